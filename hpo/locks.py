"""The store lock: what makes a check-then-write atomic for every process sharing a study store
(claiming a trial against the target, creating a study, the lockbox's test look). On SQLite, a
file lock beside the database (processes of this host); on PostgreSQL, a session-level advisory
lock on the server (processes of every host); other databases get none."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from hpo import sqlite

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
    from sqlalchemy import exc, text

    conn = _locked(storage.engine)  # its own connection: the lock is the session's
    try:
        yield
    finally:
        with contextlib.suppress(exc.SQLAlchemyError):  # a lost connection released it already
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _KEY})
        with contextlib.suppress(exc.SQLAlchemyError):
            conn.close()


def _locked(engine: Any, *, wait_s: float = 120.0) -> Any:
    """A connection holding the advisory lock, waiting out a database restart (up to `wait_s`
    seconds) whether it hits the connect or the lock statement."""
    from sqlalchemy import exc, text

    delay, deadline = 0.2, time.monotonic() + wait_s
    while True:
        conn = None
        try:
            conn = engine.connect()
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _KEY})
            return conn
        except (exc.OperationalError, exc.InterfaceError):
            if conn is not None:
                with contextlib.suppress(exc.SQLAlchemyError):
                    conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 2.0)


@contextlib.contextmanager
def url_lock(url: str) -> Iterator[None]:
    """`store_lock` for a store that is not open yet (its tables may not exist): several workers
    starting together on an empty database must not race to create them."""
    if not url.startswith("postgresql"):
        with sqlite.file_lock(url):
            yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)  # one connection, closed after
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_KEY})
    finally:
        engine.dispose()
