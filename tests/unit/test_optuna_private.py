"""Every use of Optuna's private API lives in `hpo/stores/optuna/private.py`, and each name it uses
still exists in the installed Optuna: an upgrade that renames one fails here, not mid-search."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from hpo.stores.optuna import private

PACKAGE = Path(__file__).resolve().parents[2] / "hpo"
# The private names hpo uses, each with where it lives in Optuna.
USED = ("_trial_id", "_study_id", "_get_stale_trial_ids", *private.CACHE_CALLS)


@pytest.fixture()
def study() -> optuna.Study:
    storage = optuna.storages.RDBStorage("sqlite:///:memory:", heartbeat_interval=60, grace_period=120)
    return optuna.create_study(storage=storage)


def test_trial_and_study_ids(study: optuna.Study) -> None:
    trial = study.ask()
    assert private.trial_id(trial) == private.trial_id(study.get_trials()[0])
    assert private.stale_trial_ids(study._storage, study) == []  # type: ignore[attr-defined]


def test_a_queued_trials_params_are_where_optuna_takes_them_from(study: optuna.Study) -> None:
    study.enqueue_trial({"x": 3})
    (queued,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert private.fixed_params(queued) == {"x": 3}
    assert study.ask().suggest_int("x", 0, 10) == 3  # the trial takes what the attribute says


@pytest.mark.parametrize("name", private.CACHE_CALLS)
def test_each_cached_storage_call_exists(name: str) -> None:
    assert callable(getattr(optuna.storages.RDBStorage, name, None)), name


def test_no_other_module_uses_a_private_optuna_name() -> None:
    pattern = re.compile(r"\.(" + "|".join(re.escape(n) for n in USED) + r")\b")
    users = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "private.py" and pattern.search(p.read_text(encoding="utf-8"))
    )
    assert users == [], users
