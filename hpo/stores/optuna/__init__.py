"""Optuna behind a small interface: storage, sampler, pruner, study and trial handles. The only
package that imports optuna. It knows nothing of MLflow: the keys that link the two stores live
in `hpo.stores.link`, and the search session drives trials through these handles."""

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
from hpo.stores.optuna.study import (
    Counts,
    StudyHandle,
    TrialHandle,
    TrialRow,
    create_or_resume,
    load_study,
    param_importances,
    study_names,
)

__all__ = [
    "DEFAULT_STORAGE",
    "GRACE_S",
    "HEARTBEAT_S",
    "METRIC",
    "Counts",
    "StudyHandle",
    "TrialHandle",
    "TrialRow",
    "configure",
    "create_or_resume",
    "load_study",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "param_importances",
    "study_names",
    "version",
]
