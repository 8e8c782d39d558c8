"""Every use of Optuna's private API, in one place: Optuna offers no public accessor for these,
and a release may rename them. `tests/unit/test_optuna_private.py` names each one and fails on an
Optuna that lacks it, so an upgrade breaks one test here instead of a search in flight."""

from __future__ import annotations

from typing import Any

import optuna

# The private methods that Optuna's cache layer (optuna.storages._CachedStorage, which every
# Study wraps around its storage) calls directly; tests/distributed/test_scale_out.py reads its source to
# keep this list whole. Missing _get_trials once failed a worker during a PostgreSQL restart.
CACHE_CALLS = (
    "_create_new_trial", "_get_best_trial_id", "_get_stale_trial_ids", "_get_trials", "_set_trial_param"
)  # fmt: skip


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The trial's key in the storage (heartbeats and storage writes take it, not the number)."""
    return int(trial._trial_id)


def fixed_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """A queued trial's parameters: `enqueue_trial` keeps them in a system attribute that
    `Trial` reads when the trial is taken (optuna/study/study.py, optuna/trial/_trial.py)."""
    return dict(trial.system_attrs.get("fixed_params", {}))


def stale_trial_ids(storage: optuna.storages.RDBStorage, study: optuna.Study) -> list[int]:
    """Optuna's own query for "RUNNING, heartbeat older than the grace period"."""
    return list(storage._get_stale_trial_ids(study._study_id))
