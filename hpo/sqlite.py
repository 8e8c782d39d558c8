"""SQLite settings for both stores (Optuna's and MLflow's), applied to every SQLite connection
SQLAlchemy opens in this process.

WAL journal: readers never block the writer, so several `hpo search` workers can share one
file; synchronous=NORMAL: a commit survives a crash or kill -9 of the process (the database
is never corrupted), and only a power loss may roll back the last commits. busy_timeout: a
locked database is waited for (60 s) instead of failing at once."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_MS = 60_000
_installed = False


def _configure(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError:
        pass  # a read-only or damaged file: let the store report it on first use
    finally:
        cursor.close()


def install() -> None:
    """Idempotent: register the connection hook once per process."""
    global _installed
    if not _installed:
        event.listen(Engine, "connect", _configure)
        _installed = True
