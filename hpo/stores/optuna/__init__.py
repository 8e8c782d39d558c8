"""Optuna behind a typed interface: the store (`StudyStore`), study and trial handles, samplers
and pruners. The only package that imports optuna. It knows nothing of MLflow: the keys that link
the two stores live in `hpo.stores.link`, and the search drives trials through these handles."""

from hpo.stores.optuna.storage import (
    DEFAULT_STORAGE,
    GRACE_S,
    HEARTBEAT_S,
    METRIC,
    configure,
    make_pruner,
    make_sampler,
    open_storage,
    version,
)
from hpo.stores.optuna.store import StudyStore
from hpo.stores.optuna.study import StudyHandle, param_importances
from hpo.stores.optuna.trial import Counts, TrialHandle, TrialRow

__all__ = [
    "DEFAULT_STORAGE",
    "GRACE_S",
    "HEARTBEAT_S",
    "METRIC",
    "Counts",
    "StudyHandle",
    "StudyStore",
    "TrialHandle",
    "TrialRow",
    "configure",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "param_importances",
    "version",
]
