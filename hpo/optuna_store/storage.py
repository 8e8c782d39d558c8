"""The Optuna storage: opening it (SQLite or a server database), the process-wide settings,
samplers and pruners. Part of `hpo.optuna_store`, the only package that imports optuna."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna

from hpo import sqlite
from hpo.config import PRUNERS, SAMPLERS
from hpo.errors import ConfigError, StudyError

HEARTBEAT_S = 30  # a live trial touches the store this often; other hosts judge it stale...
GRACE_S = 120  # ...after this long without a heartbeat
DEFAULT_STORAGE = "sqlite:///studies/hpo.db"
METRIC = "val_accuracy"  # the objective: a trial's best-epoch validation accuracy
_RDB_SCHEMES = ("postgresql", "mysql", "mariadb", "oracle", "mssql")


def version() -> str:
    return str(optuna.__version__)


def configure() -> None:
    """Optuna's process-wide settings; called once by `hpo.runtime.configure`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # We drive trials with ask/tell and beat the heartbeat ourselves (StudyHandle.heartbeat).
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats; SQLite waits up to 60 s on a lock instead of failing."""
    if "://" not in url:
        raise StudyError(f"malformed --storage {url!r}: expected a URL like sqlite:///studies/hpo.db")
    url = sqlite.absolute(url)
    engine: dict[str, Any] = {}
    if url.startswith("sqlite"):
        sqlite.create_folder(url, error=StudyError, what="study store")
        engine = {"connect_args": {"timeout": 60}}
    elif not url.startswith(_RDB_SCHEMES):
        raise StudyError(f"unsupported --storage {url!r}: use sqlite:///..., postgresql://... or mysql://...")
    sqlite.install()
    try:
        with sqlite.file_lock(url):  # creating the tables must not race another process
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
    except Exception as exc:  # SQLAlchemy raises many types for bad URLs, drivers and hosts
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot open study storage {url}: {first[:300]}") from None


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
