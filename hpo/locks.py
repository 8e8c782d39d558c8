"""The store lock: what makes a check-then-write atomic for every process sharing a study store
(claiming a trial against the target, creating a study, the lockbox's test look). On SQLite, a
file lock beside the database (processes of this host); on PostgreSQL, a session-level advisory
lock on the server (processes of every host); other databases get none."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from hpo import sqlite
from hpo.backoff import with_backoff

_KEY = 0x68706F  # "hpo": one advisory lock per PostgreSQL database
_SCHEMA_KEY = _KEY + 1  # creating the tables: taken before any storage object exists


@contextlib.contextmanager
def store_lock(storage: Any) -> Iterator[None]:
    """Exclusive for the block, across the processes sharing `storage` (an Optuna RDBStorage)."""
    url = str(storage.url)
    if not url.startswith("postgresql"):
        with sqlite.file_lock(url):
            yield
        return
    with _advisory(storage.engine, key=_KEY):  # its own connection: the lock is the session's
        yield


@contextlib.contextmanager
def url_lock(url: str) -> Iterator[None]:
    """`store_lock` for a store that is not open yet (its tables may not exist): several workers
    starting together on an empty database must not race to create them."""
    if not url.startswith("postgresql"):
        with sqlite.file_lock(url):
            yield
        return
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)  # one connection, closed after
    try:
        # wait_s=0: on first contact a refused connection is a wrong URL more often than a
        # restart, and the user should hear so at once.
        with _advisory(engine, key=_SCHEMA_KEY, wait_s=0):
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def _advisory(engine: Any, *, key: int, wait_s: float = 120.0) -> Iterator[None]:
    """PostgreSQL's session-level advisory lock `key` on a connection of its own, held for the
    block. Taking it waits out a database restart (up to `wait_s` seconds), whether the restart
    hits the connect or the lock statement."""
    from sqlalchemy import exc, text

    def attempt() -> Any:
        conn = engine.connect()
        try:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        except BaseException:
            with contextlib.suppress(exc.SQLAlchemyError):
                conn.close()
            raise
        return conn

    lost = (exc.OperationalError, exc.InterfaceError)
    conn = with_backoff(attempt, retry_on=lambda e: isinstance(e, lost), wait_s=wait_s)
    try:
        yield
    finally:
        with contextlib.suppress(exc.SQLAlchemyError):  # a lost connection released it already
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        with contextlib.suppress(exc.SQLAlchemyError):
            conn.close()
