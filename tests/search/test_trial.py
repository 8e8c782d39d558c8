"""One trial across both stores: `trial_end` decides how it ended from the fit and the guards, and
`TrialRecorder` claims it, logs its epochs to MLflow and the pruner, and writes its end to MLflow
first, then to Optuna, whatever happens to the MLflow write."""

from __future__ import annotations

import pytest

from hpo.core.engine import EpochMetrics, FitResult
from hpo.errors import TrackingError
from hpo.search.context import TrialContext
from hpo.search.trial import TrialRecorder
from hpo.search.trial_end import trial_end
from hpo.stores import link
from hpo.stores.link import TrialEnd
from hpo.stores.mlflow import MlflowStore
from hpo.stores.runs import TrackedRun
from tests.helpers import open_study


def epoch(n: int, val_accuracy: float) -> EpochMetrics:
    return EpochMetrics(
        epoch=n,
        train_loss=1.0,
        train_accuracy=0.5,
        val_loss=1.0,
        val_accuracy=val_accuracy,
        epoch_seconds=0.1,
        lr=0.1,
    )


def fitted(outcome: str, accuracies: list[float]) -> FitResult:
    history = [epoch(i + 1, a) for i, a in enumerate(accuracies)]
    best = max(range(len(history)), key=lambda i: accuracies[i]) if history else -1
    return FitResult(
        outcome=outcome,  # type: ignore[arg-type]
        history=history,
        best_epoch=best + 1,
        best_val_accuracy=accuracies[best] if history else 0.0,
    )


def test_a_completed_fit_ends_complete_with_its_best_epoch() -> None:
    end = trial_end(fitted("completed", [0.5, 0.9, 0.8]), guard="")
    assert end == TrialEnd(
        outcome="completed", value=0.9, epochs_run=3, best_epoch=2, reason="", epoch_seconds=0.1
    )
    assert (end.state, end.status, end.trained) == ("COMPLETE", "FINISHED", True)


def test_a_guard_that_stopped_the_fit_is_its_reason() -> None:
    end = trial_end(fitted("stopped", [0.1]), guard="chance level: 10.0% validation accuracy after epoch 1")
    assert (end.outcome, end.state, end.status, end.epochs_run) == ("pruned", "PRUNED", "KILLED", 1)
    assert end.reason.startswith("chance level")
    assert end.trial_attrs()[link.PRUNED_AT_EPOCH] == 1 and end.run_tags()[link.PRUNED_AT_EPOCH] == "1"


def test_divergence_names_its_epoch_whatever_the_guard_said() -> None:
    end = trial_end(fitted("diverged", [0.3, 0.2]), guard="time budget")
    assert (end.outcome, end.state, end.status) == ("diverged", "PRUNED", "FAILED")
    assert end.reason == "diverged: non-finite loss at epoch 2"


def test_an_untrained_end_records_no_epochs() -> None:
    end = TrialEnd(outcome="failed", reason="ValueError: boom")
    assert end.trial_attrs() == {link.OUTCOME: "failed", link.FAIL_REASON: "ValueError: boom"}
    assert end.run_tags() == {link.STATE: "FAIL", link.FAIL_REASON: "ValueError: boom"}


def test_the_claim_links_the_trial_to_its_run(trial_context: TrialContext) -> None:
    recorder = TrialRecorder.claim(trial_context)
    assert recorder is not None
    row = open_study("t").row(recorder.number)
    assert row.state == "RUNNING" and row.attrs[link.RUN_ID] == recorder.run.run_id
    assert row.attrs[link.DEVICE] == "cpu" and row.attrs[link.PRECISION] == "fp32"
    run = MlflowStore().run(recorder.run.run_id)
    assert run.status == "RUNNING" and run.tags[link.TRIAL_NUMBER] == str(recorder.number)
    assert run.tags["mlflow.parentRunId"] == trial_context.parent_run_id


def test_an_epoch_goes_to_mlflow_and_to_the_pruner(trial_context: TrialContext) -> None:
    recorder = TrialRecorder.claim(trial_context)
    assert recorder is not None
    assert recorder.epoch(epoch(1, 0.75)) is False  # the median pruner never stops epoch 1
    assert MlflowStore().metric_history(recorder.run.run_id, "val_accuracy") == [(1, 0.75)]
    assert open_study("t").row(recorder.number).curve == {1: 0.75}


def test_the_end_is_written_to_mlflow_first_then_to_optuna(
    trial_context: TrialContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = TrialRecorder.claim(trial_context)
    assert recorder is not None
    seen_at_tell: list[str] = []
    real_tell = recorder.trial.tell

    def tell(state: link.TrialState, value: float = 0.0, *, minimized: tuple[float, ...] = ()) -> None:
        run = MlflowStore().run(recorder.run.run_id)
        seen_at_tell.append(run.status)
        real_tell(state, value, minimized=minimized)

    monkeypatch.setattr(recorder.trial, "tell", tell)
    end = TrialEnd(outcome="pruned", value=0.4, epochs_run=1, best_epoch=1, reason="chance level")
    row = recorder.finish(end, description="MLP 64")
    assert seen_at_tell == ["KILLED"]
    assert (
        row.state == "PRUNED" and row.attrs[link.PRUNED_AT_EPOCH] == 1 and row.attrs[link.OUTCOME] == "pruned"
    )
    run = MlflowStore().run(recorder.run.run_id)
    assert run.tags[link.STATE] == "PRUNED" and run.tags["outcome"] == "pruned"
    assert run.tags[link.FAIL_REASON] == "chance level" and "MLP 64" in run.tags["mlflow.note.content"]
    assert run.metrics[link.TRIAL_VALUE] == 0.4


def test_optuna_records_the_end_even_when_mlflow_cannot(
    trial_context: TrialContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Optuna record is the source of truth for counts: a full or locked MLflow store must
    not leave the trial RUNNING (hpo check then closes the run)."""
    recorder = TrialRecorder.claim(trial_context)
    assert recorder is not None

    def unwritable(self: TrackedRun, *_a: object, **_k: object) -> None:
        raise TrackingError("MLflow store: cannot set tags: database or disk is full")

    monkeypatch.setattr(TrackedRun, "end", unwritable)
    row = recorder.finish(TrialEnd(outcome="failed", reason="RuntimeError: boom"))
    assert row.state == "FAIL" and row.attrs[link.FAIL_REASON] == "RuntimeError: boom"


def test_no_claim_past_the_target(trial_context: TrialContext) -> None:
    for _ in range(2):
        recorder = TrialRecorder.claim(trial_context)
        assert recorder is not None
        recorder.finish(TrialEnd(outcome="completed", value=0.5, epochs_run=1, best_epoch=1))
    assert TrialRecorder.claim(trial_context) is None
    assert open_study("t").counts().finished == 2
