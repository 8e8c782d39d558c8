"""The store lock: one holder at a time among every process sharing a store (a file lock beside
an SQLite store; a PostgreSQL advisory lock on a server), and a server that says it is restarting
is told apart from one that is not there."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from hpo.stores.locks import _restarting, store_lock, url_lock


def held_while(lock_factory: object, seconds: float) -> tuple[threading.Thread, threading.Event]:
    """Hold the lock in another thread for `seconds`; the event is set once it is held."""
    taken = threading.Event()

    def hold() -> None:
        with lock_factory():  # type: ignore[operator]
            taken.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(timeout=30)
    return thread, taken


def test_the_sqlite_lock_waits_for_its_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hpo.db"
    holder, _ = held_while(lambda: store_lock(url=url, engine=None), 0.5)
    start = time.monotonic()
    with store_lock(url=url, engine=None):
        waited = time.monotonic() - start
    holder.join()
    assert waited >= 0.4 and (tmp_path / "hpo.db.lock").exists()


def test_the_lock_before_a_store_exists_is_the_same_lock(tmp_path: Path) -> None:
    """Creating the tables (url_lock) and claiming a trial (store_lock) exclude each other."""
    url = f"sqlite:///{tmp_path}/hpo.db"
    holder, _ = held_while(lambda: url_lock(url), 0.5)
    start = time.monotonic()
    with store_lock(url=url, engine=None):
        waited = time.monotonic() - start
    holder.join()
    assert waited >= 0.4


def test_the_postgresql_lock_waits_for_its_holder(postgres_url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(postgres_url)
    try:
        holder, _ = held_while(lambda: store_lock(url=postgres_url, engine=engine), 0.5)
        start = time.monotonic()
        with store_lock(url=postgres_url, engine=engine):
            waited = time.monotonic() - start
        holder.join()
    finally:
        engine.dispose()
    assert waited >= 0.4


class _Refused(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def test_a_restarting_server_is_told_from_an_absent_one() -> None:
    assert _restarting(_Refused("FATAL: the database system is starting up"))
    assert _restarting(_Refused("cannot connect now", sqlstate="57P03"))
    assert not _restarting(_Refused('connection to server at "127.0.0.1", port 1 failed: Connection refused'))
