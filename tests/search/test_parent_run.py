"""The study's parent run tells the story in MLflow's own UI: history, best trial, descriptions,
and experiments that open in model-training mode."""

from __future__ import annotations

import json
from pathlib import Path

from hpo.search.parent_run import BEST
from hpo.stores import link
from hpo.stores.mlflow import EXPERIMENT_KIND, MODEL_TRAINING, NOTE, MlflowStore
from tests.helpers import hpo, open_study, search


def test_parent_run_history_best_tag_and_descriptions(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=4, epochs=2)
    handle = open_study("s")
    best = handle.best()
    assert best is not None
    store = MlflowStore()
    experiment = store.experiment("s")
    assert store.client.get_experiment(experiment).tags[EXPERIMENT_KIND] == MODEL_TRAINING
    parent_id = link.parent_run_id(handle)
    history = store.metric_history(parent_id, "trial_val_accuracy")
    assert [step for step, _ in history] == [r.number for r in handle.rows()]
    running_best = [v for _, v in store.metric_history(parent_id, "best_val_accuracy")]
    assert running_best == sorted(running_best) and running_best[-1] == best.value
    parent = store.run(parent_id)
    assert f"[trial {best.number}](" in parent.tags[NOTE] and link.run_id(best) in parent.tags[NOTE]
    children = [r for r in store.runs(experiment) if r.run_id != parent_id]
    assert [r.run_id for r in children if r.tags.get(BEST) == "true"] == [link.run_id(best)]
    for run in children:
        assert run.tags[NOTE].startswith(run.tags["state"]) and "mlp" in run.tags[NOTE]


def test_ui_prints_the_study_runs_page_in_model_training_mode(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1, epochs=1)
    experiment = MlflowStore().experiment("s")
    code, out, _ = hpo("ui", "--dry-run", "--port", 5123)
    assert code == 0
    query = "viewStateShareKey=hpo-study&workflowType=machine_learning"
    assert f"http://127.0.0.1:5123/#/experiments/{experiment}/runs?{query}" in out
    view = json.loads(
        MlflowStore().client.get_experiment(experiment).tags["mlflow.sharedViewState.hpo-study"]
    )
    assert view["groupBy"]["groupByKeys"] == [
        {"mode": "tag", "groupByData": "hpo_role"}
    ]  # trials grouped, open
    assert "(study 's')" in out
    code, out, err = hpo("ui", "--dry-run", "--study", "ghost")
    assert code == 1 and "no experiment named 'ghost'" in err


def test_the_value_column_shows_each_runs_best_the_study_runs_too(workdir: Path, data_dir: Path) -> None:
    """The runs table shows a metric's latest value: the study run's `trial_val_accuracy` is the
    last trial's. The view's column is `best_val_accuracy`: the study's best on its run, each
    trial's own on its run."""
    from hpo.results.browsers import study_view

    search(data_dir, trials=3, epochs=2)
    handle, store = open_study("s"), MlflowStore()
    best = handle.best()
    assert best is not None
    column = f"metrics.`{link.BEST_VALUE}`"
    assert study_view()["selectedColumns"][0] == column and study_view()["orderByKey"] == column
    assert store.run(link.parent_run_id(handle)).metrics[link.BEST_VALUE] == best.value
    for row in handle.rows(states=("COMPLETE",)):
        assert store.run(link.run_id(row)).metrics[link.BEST_VALUE] == row.value
