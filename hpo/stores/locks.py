"""The store lock: what makes a check-then-write atomic for every process sharing a study store
(claiming a trial against the target, creating a study, the lockbox's test look). On SQLite, a
file lock beside the database (processes of this host); on PostgreSQL, a session-level advisory
lock on the server (processes of every host); other databases get none."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from hpo.stores import sqlite
from hpo.stores.backoff import with_backoff

_KEY = 0x68706F  # "hpo": one advisory lock per PostgreSQL database
_SCHEMA_KEY = _KEY + 1  # creating the tables: taken before any storage object exists


@contextlib.contextmanager
def store_lock(*, url: str, engine: Any) -> Iterator[None]:
    """Exclusive for the block, across the processes sharing the store at `url`; `engine` is its
    SQLAlchemy engine (used on PostgreSQL only, for a connection of the lock's own)."""
    if not url.startswith("postgresql"):
        with sqlite.file_lock(url):
            yield
        return
    with _advisory(engine, key=_KEY):  # its own connection: the lock is the session's
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
        with _advisory(engine, key=_SCHEMA_KEY, first_contact=True):
            yield
    finally:
        engine.dispose()


# What PostgreSQL answers while it starts, stops or recovers (SQLSTATE 57P03, cannot_connect_now).
# The connect error carries no SQLSTATE (it is libpq's), so the server's message is matched too.
_RESTARTING = tuple(
    f"the database system is {state}"
    for state in ("starting up", "shutting down", "in recovery mode", "not yet accepting")
)


def _restarting(exc: BaseException) -> bool:
    """The server said it is starting up, shutting down or recovering: it exists and comes back."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code == "57P03" or any(sign in str(exc) for sign in _RESTARTING)


@contextlib.contextmanager
def _advisory(engine: Any, *, key: int, wait_s: float = 120.0, first_contact: bool = False) -> Iterator[None]:
    """PostgreSQL's session-level advisory lock `key` on a connection of its own, held for the
    block. Taking it waits out a database restart (up to `wait_s` seconds), whether the restart
    hits the connect or the lock statement. On `first_contact`, a refused connection fails at
    once (a wrong host or port is more often the cause, and the user should hear so now) unless
    the server has said it is restarting: from then on the restart is waited out like any other."""
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

    restart_seen = not first_contact

    def retry(error: Exception) -> bool:
        nonlocal restart_seen
        restart_seen = restart_seen or _restarting(error)
        return restart_seen and isinstance(error, (exc.OperationalError, exc.InterfaceError))

    conn = with_backoff(attempt, retry_on=retry, wait_s=wait_s)
    try:
        yield
    finally:
        with contextlib.suppress(exc.SQLAlchemyError):  # a lost connection released it already
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        with contextlib.suppress(exc.SQLAlchemyError):
            conn.close()
