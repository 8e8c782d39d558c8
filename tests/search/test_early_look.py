"""The early look (`search.early_look`): a quarter into epoch 1, a sampled trial below the top third
of the study's early looks stops; warm starts and final trainings are looked at, never stopped;
tiny epochs have no look."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hpo.core import engine
from hpo.core.data import Split
from hpo.search import early_look
from hpo.search.early_look import Look
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from tests.helpers import FAST, open_study, search

SMALL_BATCHES = {**FAST, "batch_size": [16]}  # 1,000 training images: 63 batches an epoch


def look(accuracy: float) -> Look:
    return Look(accuracy=accuracy, fraction=0.25, images=2000)


def test_a_look_below_the_top_third_stops_the_trial() -> None:
    assert early_look.reason(look(0.1), others=[0.9, 0.8]) == ""  # too few looks to judge by
    assert early_look.reason(look(0.9), others=[0.9, 0.8, 0.85]) == ""  # ties go on
    why = early_look.reason(look(0.5), others=[0.9, 0.8, 0.85])
    assert why == (
        "early look: 50.0% on 2000 validation images after 25% of epoch 1, below the top third of "
        "the study's early looks (90.0%)"
    )
    six = [0.9, 0.8, 0.85, 0.7, 0.6]  # with itself, 6 looks: the top 2 go on
    assert early_look.reason(look(0.86), others=six) == "" and early_look.reason(look(0.84), others=six)


def test_the_look_comes_a_quarter_into_an_epoch_long_enough_to_have_one() -> None:
    assert not early_look.due(batch=7, batches=32) and early_look.due(batch=8, batches=32)
    assert not early_look.due(batch=10, batches=early_look.MIN_BATCHES - 1)  # tiny data: no look
    val = Split(x=torch.zeros(5000, 1, 28, 28), y=torch.zeros(5000, dtype=torch.int64))
    assert len(early_look.subset(val)) == early_look.IMAGES


def test_a_search_stops_the_sampled_trial_whose_look_is_poor(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The looks' accuracies are set (0.9, 0.8, 0.85, then 0.5 and 0.95): the fourth trial stops at
    its look, before its first epoch ends; every trial records its look on both stores."""
    accuracies = iter([0.9, 0.8, 0.85, 0.5, 0.95])
    monkeypatch.setattr(early_look, "evaluate", lambda *_a, **_k: (0.0, next(accuracies)))
    monkeypatch.setattr(engine, "PROGRESS_S", 0.0)  # a progress report after every batch
    search(data_dir, trials=5, epochs=2, space=SMALL_BATCHES, warm_start=False, pruner="sha")
    rows = open_study("s").rows()
    assert [r.attrs[link.EARLY_VAL] for r in rows] == [0.9, 0.8, 0.85, 0.5, 0.95]
    stopped = rows[3]
    assert stopped.state == "PRUNED" and stopped.curve == {}  # no epoch finished
    assert stopped.attrs[link.FAIL_REASON].startswith("early look: 50.0% on 200 validation images")
    assert not any(
        str(r.attrs.get(link.FAIL_REASON, "")).startswith("early") for r in rows if r is not stopped
    )
    run = MlflowStore(uri=None).client.get_run(stopped.attrs[link.RUN_ID])
    assert run.data.metrics[link.EARLY_VAL] == 0.5


def test_warm_starts_are_looked_at_but_never_stopped(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three sampled trials look at 90%; a warm start queued after them looks at 10% and trains on."""
    accuracies = iter([0.9, 0.9, 0.9, 0.1])
    monkeypatch.setattr(early_look, "evaluate", lambda *_a, **_k: (0.0, next(accuracies)))
    monkeypatch.setattr(engine, "PROGRESS_S", 0.0)
    search(data_dir, trials=3, epochs=1, space=SMALL_BATCHES, warm_start=False, pruner="sha")
    study = open_study("s")
    study.enqueue(study.rows()[0].params, attrs={link.WARM_START: "a known-good one"}, again=True)
    search(data_dir, trials=4, epochs=1, space=SMALL_BATCHES, warm_start=False, pruner="sha")
    warm = open_study("s").rows()[3]
    assert warm.attrs[link.WARM_START] and warm.attrs[link.EARLY_VAL] == 0.1
    assert warm.state == "COMPLETE" and sorted(warm.curve) == [1]
