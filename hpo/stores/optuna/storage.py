"""The Optuna storage: opening it (SQLite or a server database), the process-wide settings,
samplers and pruners. Part of `hpo.stores.optuna`, the only package that imports optuna."""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
import warnings
from typing import Any

import optuna

from hpo.config import PRUNERS, SAMPLERS
from hpo.errors import ConfigError, StudyError, first_line, redact
from hpo.stores import link, sqlite
from hpo.stores.backoff import with_backoff
from hpo.stores.locks import url_lock
from hpo.stores.optuna.private import CACHE_CALLS

HEARTBEAT_S = 30  # a live trial touches the store this often (env HPO_HEARTBEAT_S); it is stale...
GRACE_S = 120  # ...after this long without a heartbeat (env HPO_GRACE_S): then FAIL, and re-run
DEFAULT_STORAGE = "sqlite:///studies/hpo.db"
METRIC = link.VAL_ACCURACY  # the objective: a trial's best-epoch validation accuracy
_RDB_SCHEMES = ("postgresql", "mysql", "mariadb", "oracle", "mssql")


def version() -> str:
    return str(optuna.__version__)


def configure() -> None:
    """Optuna's process-wide settings; called once by `hpo.stores.runtime.configure`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # We drive trials with ask/tell and beat the heartbeat ourselves (StudyHandle.heartbeat).
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)


def _seconds(name: str, default: int) -> int:
    """A whole number of seconds from the environment (tests and impatient labs shorten them)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name} must be a whole number of seconds >= 1; got {raw!r}")
    return int(raw)


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds; the grace must exceed the interval."""
    beat, grace = _seconds("HPO_HEARTBEAT_S", HEARTBEAT_S), _seconds("HPO_GRACE_S", GRACE_S)
    if grace <= beat:
        raise ConfigError(
            f"HPO_GRACE_S ({grace}) must exceed HPO_HEARTBEAT_S ({beat}): a live trial would look dead"
        )
    return beat, grace


def _server_url(url: str) -> str:
    """postgresql://... means psycopg 3 (the postgres extra) unless psycopg2 is what is installed."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


RECONNECT_S = 120  # how long a call on a server database waits out its restart before failing
# Every call Optuna makes on the storage: its public methods, and those.
_RETRIED = sorted(
    name
    for name, member in vars(optuna.storages.RDBStorage).items()
    if callable(member) and (not name.startswith("_") or name in CACHE_CALLS)
)
_RETRYING = threading.local()  # set while a retried call runs: the calls it makes are not retried again


def transient(exc: BaseException) -> bool:
    """A lost or refused database connection (a restart, a network blip), not a bad request."""
    from sqlalchemy import exc as sa

    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    lost = (sa.OperationalError, sa.InterfaceError, sa.PendingRollbackError)
    return isinstance(cause, lost) or bool(getattr(cause, "connection_invalidated", False))


def _retrying(method: Any) -> Any:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_RETRYING, "active", False):  # inside a retried call (create_new_trial calls
            return method(self, *args, **kwargs)  # _create_new_trial): the outer one waits
        _RETRYING.active = True
        try:
            return with_backoff(lambda: method(self, *args, **kwargs), retry_on=transient, wait_s=RECONNECT_S)
        finally:
            _RETRYING.active = False

    return call


class ResilientStorage(optuna.storages.RDBStorage):
    """An RDB storage on a database server whose calls wait out a restart of the server (up to
    RECONNECT_S, reconnecting through pool_pre_ping) instead of failing the trial in flight."""


for _name in _RETRIED:
    setattr(ResilientStorage, _name, _retrying(getattr(optuna.storages.RDBStorage, _name)))


_OPEN: dict[tuple[str, int, int], optuna.storages.RDBStorage] = {}  # server stores, per process


def open_storage(url: str, *, create: bool = True) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats. SQLite waits up to 60 s on a lock instead of failing; a
    server database's pooled connections are checked before use (pool_pre_ping), so a restarted
    server costs a reconnect, not an error."""
    if "://" not in url:
        raise StudyError(f"malformed --storage {url!r}: expected a URL like sqlite:///studies/hpo.db")
    url = _server_url(sqlite.absolute(url))
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        sqlite.check_store(url, kind="optuna", create=create, error=StudyError)
        sqlite.create_folder(url, error=StudyError, what="study store")
        engine = {"connect_args": {"timeout": 60}}
    elif not url.startswith(_RDB_SCHEMES):
        raise StudyError(f"unsupported --storage {url!r}: use sqlite:///..., postgresql://... or mysql://...")
    beat, grace = heartbeat_settings()
    sqlite.install()
    if (url, beat, grace) in _OPEN:  # one pool per process: a reopen mid-search needs no new connection
        return _OPEN[url, beat, grace]
    kind = optuna.storages.RDBStorage if url.startswith("sqlite") else ResilientStorage
    try:
        with url_lock(url):  # creating the tables must not race another process, on any host
            storage = kind(url, engine_kwargs=engine, heartbeat_interval=beat, grace_period=grace)
        if kind is ResilientStorage:
            _OPEN[url, beat, grace] = storage
        return storage
    except ModuleNotFoundError as exc:
        raise StudyError(
            f'no driver for --storage {redact(url)} ({exc}): pip install "hpo[postgres]"'
        ) from None
    except Exception as exc:  # SQLAlchemy raises many types for bad URLs, drivers and hosts
        raise StudyError(redact(f"cannot open study storage {url}: {first_line(exc)}")) from None


def make_sampler(name: str, *, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ConfigError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")


def make_pruner(name: str, *, epochs: int) -> optuna.pruners.BasePruner:
    """Median: never prune in the first epoch (steps are 1-based epochs, so warm-up 2), nor before
    5 trials have a median to compare. Hyperband/SHA: rungs from epoch 1, reduction factor 3."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}")
