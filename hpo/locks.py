"""The store lock: what makes a check-then-write atomic for every process sharing a study store
(claiming a trial against the target, creating a study, the lockbox's test look). On SQLite, a
file lock beside the database (processes of this host); on PostgreSQL, a session-level advisory
lock on the server (processes of every host); other databases get none."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from hpo import sqlite

_KEY = 0x68706F  # "hpo": one advisory lock per PostgreSQL database


@contextlib.contextmanager
def store_lock(storage: Any) -> Iterator[None]:
    """Exclusive for the block, across the processes sharing `storage` (an Optuna RDBStorage)."""
    url = str(storage.url)
    if not url.startswith("postgresql"):
        with sqlite.file_lock(url):
            yield
        return
    from sqlalchemy import text

    with storage.engine.connect() as conn:  # its own connection: the lock is the session's
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _KEY})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _KEY})
