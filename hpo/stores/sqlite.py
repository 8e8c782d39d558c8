"""SQLite, shared by both stores (Optuna's and MLflow's): connection settings, URL handling and
the file lock that serializes processes of one host on one store file.

Settings, applied by `install()` to every SQLite connection SQLAlchemy opens in this process:
WAL journal (readers never block the writer, so several `hpo search` workers can share one
file); synchronous=NORMAL (a commit survives a crash or kill -9 of the process; only a power loss
may roll back the last commits, never corrupt the file); busy_timeout (a locked database is
waited for, 60 s, instead of failing at once)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from hpo.errors import HpoError

BUSY_TIMEOUT_MS = 60_000
PREFIX = "sqlite:///"
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
    """Idempotent: register the connection hook once per process. Called by `hpo.stores.runtime.configure`
    and again by each store when it opens, so durability never depends on the caller."""
    global _installed
    if not _installed:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "connect", _configure)
        _installed = True


def db_path(url: str) -> Path | None:
    """The database file of a `sqlite:///` URL, None for any other URL."""
    return Path(url.removeprefix(PREFIX)) if url.startswith(PREFIX) else None


def absolute(url: str) -> str:
    """A relative SQLite URL made absolute; other URLs unchanged. SQLAlchemy and MLflow cache one
    engine per URL string, so a relative one could follow a later change of directory."""
    path = db_path(url)
    if path is None or url.startswith(PREFIX + "/"):
        return url
    return PREFIX + str(path.resolve())


def create_folder(url: str, *, error: type[HpoError], what: str) -> None:
    """Create the folder of a SQLite store file; `error` names the store if that fails."""
    path = db_path(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create the {what} folder {path.parent}: {exc.strerror}") from None


@contextlib.contextmanager
def file_lock(url: str) -> Iterator[None]:
    """Exclusive lock on `<db>.lock` beside a SQLite store, for processes of this host; a no-op for
    other URLs and on Windows (no fcntl: concurrent workers may overshoot by a trial or two)."""
    path = db_path(url)
    try:
        import fcntl
    except ImportError:
        path = None
    if path is None:
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


StoreKind = Literal["optuna", "mlflow"]
# A table each store has and the other lacks: how a file is told to be one or the other.
_MARKS: dict[StoreKind, str] = {"optuna": "studies", "mlflow": "experiments"}
_NAMES: dict[StoreKind, tuple[str, str, str]] = {  # its article and name, the flag that gives it
    "optuna": ("a", "study store", "--storage"),
    "mlflow": ("an", "MLflow tracking store", "--tracking-uri"),
}


def tables(path: Path) -> set[str] | None:
    """The tables of the SQLite file at `path`, read without writing (None: not a database)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError:
        return None


def check_store(url: str, *, kind: StoreKind, create: bool, error: type[HpoError]) -> None:
    """Before a store at `url` is opened: refuse a missing file unless `create` (a read-only command
    must not leave an empty store behind, nor say an empty one agrees with anything), and a file
    holding the other store's tables (opening it would write this store's tables into it). Server
    URLs and files that are no database are left to the store's own error."""
    path = db_path(url)
    if path is None:
        return
    article, what, flag = _NAMES[kind]
    if not path.exists():
        if not create:
            raise error(f"no {what} at {path}: run `hpo search` here first, or give its path with {flag}")
        return
    found = tables(path) or set()
    other: StoreKind = "mlflow" if kind == "optuna" else "optuna"
    if _MARKS[other] in found and _MARKS[kind] not in found:
        other_article, other_what, other_flag = _NAMES[other]
        raise error(
            f"{path} is {other_article} {other_what}, not {article} {what}: give it as {other_flag} "
            f"(and the {what} as {flag})"
        )


def redo_interrupted_creation(url: str, *, error: type[HpoError], what: str) -> None:
    """An SQLite store whose creation was killed half-way (MLflow builds its tables by migrations;
    SQLite's ALTER TABLE goes through a `_alembic_tmp_*` copy, and a kill between the copy and the
    rename left a table behind that failed every later open). Holding no run yet, it is removed so
    the store is made anew; holding runs, it is refused untouched."""
    path = db_path(url)
    if path is None or not path.exists():
        return
    found = tables(path) or set()
    leftovers = sorted(t for t in found if t.startswith("_alembic_tmp_"))
    if not leftovers:
        return
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0] if "runs" in found else 0
    if runs:
        raise error(
            f"the {what} {path} was interrupted while its tables were being upgraded ({leftovers[0]} is "
            "left): restore it from a copy"
        )
    with file_lock(url):  # one process removes it; the others find it gone, or made anew
        if any(t.startswith("_alembic_tmp_") for t in tables(path) or ()):
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
