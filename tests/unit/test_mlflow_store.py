"""MLflow behind `MlflowStore`: experiments made once and marked for model training, writes that
turn any failure into one TrackingError line, params in batches of MLflow's limit, a status
checked before it is written, and MLflow's process-wide URI left as the caller had it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpo.errors import TrackingError
from hpo.stores.mlflow import EXPERIMENT_KIND, MODEL_TRAINING, MlflowStore, run_url


def test_an_experiment_is_made_once_and_marked_for_model_training(workdir: Path) -> None:
    store = MlflowStore()
    first = store.experiment("study one")
    assert store.experiment("study one") == first and store.find_experiment("study one") == first
    assert store.find_experiment("never made") is None
    assert store.client.get_experiment(first).tags[EXPERIMENT_KIND] == MODEL_TRAINING
    assert (
        Path(store.client.get_experiment(first).artifact_location.removeprefix("file://")).name == "study_one"
    )


def test_a_deleted_experiment_comes_back(workdir: Path) -> None:
    store = MlflowStore()
    experiment = store.experiment("s")
    store.client.delete_experiment(experiment)
    assert store.find_experiment("s") is None
    assert store.experiment("s") == experiment


def test_more_params_than_one_batch_takes(workdir: Path) -> None:
    store = MlflowStore()
    run_id = store.start_run(experiment_id=store.experiment("s"), name="r", tags={})
    store.log_params(run_id, {f"p{i}": i for i in range(250)})  # MLflow takes 100 per batch
    assert len(store.run(run_id).params) == 250


def test_a_failed_call_is_one_line_naming_what_failed(workdir: Path) -> None:
    with pytest.raises(TrackingError, match=r"^MLflow store: cannot read run nope: ") as info:
        MlflowStore().run("nope")
    assert "\n" not in str(info.value)


def test_a_status_is_checked_before_it_is_written(workdir: Path) -> None:
    store = MlflowStore()
    run_id = store.start_run(experiment_id=store.experiment("s"), name="r", tags={})
    with pytest.raises(Exception, match="FINISH"):
        store.end_run(run_id, status="FINISH")  # type: ignore[arg-type]
    assert store.run_status(run_id) == "RUNNING"
    store.end_run(run_id, status="KILLED")
    assert store.run_status(run_id) == "KILLED" and store.run_status("nope") is None


def test_model_logging_leaves_the_process_tracking_uri_as_it_was(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    store = MlflowStore(uri="sqlite:///mlruns/mlflow.db")
    with store._fluent():
        assert os.environ["MLFLOW_TRACKING_URI"] == store.uri
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"


def test_a_runs_link_opens_it_in_model_training_mode() -> None:
    url = run_url(base="http://127.0.0.1:5000", experiment_id="3", run_id="abc")
    assert url == "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
