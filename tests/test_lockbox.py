"""`hpo best` and `hpo best --evaluate-test`: the test-set lockbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo import link
from hpo.mlflow_store import MlflowStore
from hpo.optuna_store import load_study, open_storage
from tests.helpers import assert_one_line_error, hpo, search

STORE = "sqlite:///studies/hpo.db"


def best_run_id(study: str = "s") -> str:
    return str(load_study(open_storage(STORE), study).best().attrs[link.RUN_ID])  # type: ignore[union-attr]


def test_best_shows_trial_and_unused_test_set(searched: Path) -> None:
    code, out, err = hpo("best", "--study", "s")
    assert code == 0, out + err
    for needle in ("best trial", "validation accuracy", "MLflow run", "checkpoint", "never used"):
        assert needle in out
    assert "test accuracy" not in out  # plain `best` never touches the test set
    assert load_study(open_storage(STORE), "s").attr(link.TEST_EVALUATIONS) is None


def test_evaluate_test_once_then_refuse_then_force(searched: Path) -> None:
    code, out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert code == 0, out + err
    assert (
        "test accuracy" in out and "Per-class accuracy (hardest first)" in out and "Confusion matrix" in out
    )
    assert "summed NLL" in out and "test-set uses 1" in out
    store, run_id = MlflowStore(), best_run_id()
    run = store.run(run_id)
    assert {"test_accuracy", "test_nll", "test_nll_sum"} <= set(run.metrics)
    assert run.metrics["test_accuracy"] > 0.9 and run.tags["test_evaluations"] == "1"
    assert sorted(a.path for a in store.client.list_artifacts(run_id, "test")) == [
        "test/confusion_matrix.png",
        "test/misclassified.png",
    ]
    parent = store.run(load_study(open_storage(STORE), "s").attr(link.PARENT_RUN_ID))
    assert parent.metrics["test_accuracy"] == run.metrics["test_accuracy"]

    code, out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert_one_line_error(code, "", err, "already used", "test accuracy", "--force")
    assert code != 0

    code, out, err = hpo("best", "--evaluate-test", "--force", "--data-dir", searched)
    assert code == 0 and "test-set uses 2" in out
    assert "used 2 time(s)" in hpo("best")[1]
    assert store.run(run_id).tags["test_evaluations"] == "2"
    assert len(load_study(open_storage(STORE), "s").attr(link.TEST_EVALUATIONS)) == 2
    code, out, _ = hpo("studies")
    assert code == 0 and out.rstrip().endswith("2")


def _weights_file(run_id: str) -> Path:
    uri = MlflowStore().run(run_id).artifact_uri
    return Path(uri.removeprefix("file://")) / "checkpoint" / "model.pt"


@pytest.mark.parametrize("damage", ["truncate", "delete-folder"])
def test_damaged_checkpoint_is_clear_and_records_nothing(searched: Path, damage: str) -> None:
    weights = _weights_file(best_run_id())
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
        needle = "model.pt are corrupt"
    else:
        import shutil

        shutil.rmtree(weights.parent.parent)
        needle = "cannot be read"
    code, _out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert_one_line_error(code, "", err, needle)
    assert load_study(open_storage(STORE), "s").attr(link.TEST_EVALUATIONS) is None


def test_evaluate_refuses_other_data(searched: Path, tmp_path: Path) -> None:
    from tests.conftest import make_dataset

    other = make_dataset(tmp_path / "other", "MNIST", seed=42)
    code, _out, err = hpo("best", "--evaluate-test", "--data-dir", other)
    assert_one_line_error(code, "", err, "split fingerprint", "--data-dir")
    assert load_study(open_storage(STORE), "s").attr(link.TEST_EVALUATIONS) is None


def test_best_without_study_or_complete_trial(workdir: Path, data_dir: Path) -> None:
    code, out, err = hpo("best", "--study", "ghost")
    assert_one_line_error(code, out, err, "no study named 'ghost'")
    space = {
        "mlp_layers": 1,
        "mlp_width": [16],
        "lr": {"low": 1e4, "high": 1e5},
        "optimizer": ["sgd"],
        "momentum": [0.9],
        "schedule": ["none"],
    }
    search(data_dir, trials=1, space=space)  # diverges: pruned, never complete
    code, out, err = hpo("best", "--study", "s")
    assert_one_line_error(code, out, err, "no complete trial")
