"""`hpo best --evaluate-test` (the lockbox), `hpo report`, `hpo predict`, `hpo ui`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hpo.study import load_study, open_storage
from hpo.tracking import Tracker
from tests.helpers import assert_one_line_error, hpo, search

STORE = "sqlite:///studies/hpo.db"


def best_run_id(study: str = "s") -> str:
    return str(load_study(open_storage(STORE), study).best().attrs["mlflow_run_id"])  # type: ignore[union-attr]


@pytest.fixture()
def searched(workdir: Path, data_dir: Path) -> Path:
    search(data_dir, trials=2, epochs=2)
    return data_dir


def test_best_shows_trial_and_unused_test_set(searched: Path) -> None:
    code, out, err = hpo("best", "--study", "s")
    assert code == 0, out + err
    for needle in ("best trial", "validation accuracy", "MLflow run", "checkpoint", "never used"):
        assert needle in out
    assert "test accuracy" not in out  # plain `best` never touches the test set
    assert load_study(open_storage(STORE), "s").attr("test_evaluations") is None


def test_evaluate_test_once_then_refuse_then_force(searched: Path) -> None:
    code, out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert code == 0, out + err
    assert (
        "test accuracy" in out and "Per-class accuracy (hardest first)" in out and "Confusion matrix" in out
    )
    assert "summed NLL" in out and "test-set uses 1" in out
    tracker, run_id = Tracker(), best_run_id()
    run = tracker.run(run_id)
    assert {"test_accuracy", "test_nll", "test_nll_sum"} <= set(run.metrics)
    assert run.metrics["test_accuracy"] > 0.9 and run.tags["test_evaluations"] == "1"
    assert sorted(a.path for a in tracker.client.list_artifacts(run_id, "test")) == [
        "test/confusion_matrix.png",
        "test/misclassified.png",
    ]
    parent = tracker.run(load_study(open_storage(STORE), "s").attr("mlflow_parent_run_id"))
    assert parent.metrics["test_accuracy"] == run.metrics["test_accuracy"]

    code, out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert_one_line_error(code, "", err, "already used", "test accuracy", "--force")
    assert code != 0

    code, out, err = hpo("best", "--evaluate-test", "--force", "--data-dir", searched)
    assert code == 0 and "test-set uses 2" in out
    assert "used 2 time(s)" in hpo("best")[1]
    assert tracker.run(run_id).tags["test_evaluations"] == "2"
    assert len(load_study(open_storage(STORE), "s").attr("test_evaluations")) == 2
    code, out, _ = hpo("studies")
    assert code == 0 and out.rstrip().endswith("2")


def _weights_file(run_id: str) -> Path:
    uri = Tracker().run(run_id).artifact_uri
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
    assert load_study(open_storage(STORE), "s").attr("test_evaluations") is None


def test_evaluate_refuses_other_data(searched: Path, tmp_path: Path) -> None:
    from tests.conftest import make_dataset

    other = make_dataset(tmp_path / "other", "MNIST", seed=42)
    code, _out, err = hpo("best", "--evaluate-test", "--data-dir", other)
    assert_one_line_error(code, "", err, "split fingerprint", "--data-dir")
    assert load_study(open_storage(STORE), "s").attr("test_evaluations") is None


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


def test_report_writes_and_logs_plots(searched: Path) -> None:
    code, out, err = hpo("report", "--out", "plots")
    assert code == 0, out + err
    names = sorted(p.name for p in Path("plots").iterdir())
    assert names == [
        "optimization_history.png",
        "parallel_coordinates.png",
        "param_importances.png",
        "validation_curves.png",
    ]
    for name in names:
        assert Image.open(Path("plots") / name).size[0] > 300
    parent = load_study(open_storage(STORE), "s").attr("mlflow_parent_run_id")
    assert len(Tracker().client.list_artifacts(parent, "report")) == 4


def _test_images(data_dir: Path, folder: str) -> tuple[np.ndarray, np.ndarray]:
    raw = data_dir / folder / "raw"
    images = np.frombuffer((raw / "t10k-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8).reshape(
        -1, 28, 28
    )
    labels = np.frombuffer((raw / "t10k-labels-idx1-ubyte").read_bytes()[8:], dtype=np.uint8)
    return images, labels


def test_predict_labels_png_cut_from_test_set(workdir: Path, data_dir: Path) -> None:
    # Fashion preprocessing keeps the frame (the synthetic classes are encoded by position).
    search(data_dir, trials=1, epochs=3, dataset="fashion-mnist", study="f")
    images, labels = _test_images(data_dir, "FashionMNIST")
    paths = []
    for i in range(6):
        Image.fromarray(images[i]).resize((112, 112)).save(f"img{i}.png")
        paths.append(f"img{i}.png")
    Image.fromarray(255 - images[6]).save("light.jpg")  # dark on light: must be inverted back
    code, out, err = hpo("predict", *paths, "light.jpg", "--study", "f", "--top", 3)
    assert code == 0, out + err
    from hpo.data import FASHION_CLASSES

    rows = [line for line in out.splitlines() if line.strip().startswith(("img", "light"))]
    assert len(rows) == 7
    for i, row in enumerate(rows):
        assert FASHION_CLASSES[int(labels[i])] in row, row
    assert "(inverted)" in rows[6]


def test_predict_rejects_non_image(searched: Path) -> None:
    Path("notes.txt").write_text("not an image")
    code, out, err = hpo("predict", "notes.txt")
    assert_one_line_error(code, out, err, "notes.txt is not an image")
    code, out, err = hpo("predict", "missing.png")
    assert_one_line_error(code, out, err, "missing.png does not exist")


def test_ui_dry_run_prints_commands(workdir: Path) -> None:
    code, out, _ = hpo("ui", "--dry-run", "--port", 5123)
    assert code == 0
    assert "http://127.0.0.1:5123" in out and "mlflow ui --backend-store-uri sqlite:///" in out
    assert "--default-artifact-root" in out and "optuna-dashboard sqlite:///studies/hpo.db" in out
