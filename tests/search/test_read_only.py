"""Commands that read a project never create or change a store: in a folder without one they say
so in one line and leave nothing behind; a database of the other store's kind is refused
untouched; a mistyped --data-dir leaves no empty folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, hpo, search


@pytest.fixture()
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for var in ("MLFLOW_TRACKING_URI", "HPO_STORAGE", "HPO_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    return folder


@pytest.mark.parametrize(
    "command",
    [["studies"], ["trials"], ["best"], ["report"], ["check"], ["predict", "x.png"], ["ui", "--dry-run"]],
)
def test_reading_an_empty_folder_creates_nothing(empty: Path, command: list[str]) -> None:
    """`hpo check` there used to say "both stores agree" about the empty stores it had made."""
    code, out, err = hpo(*command)
    assert_one_line_error(code, out, err, "no ")
    assert "run `hpo search` here first" in err
    assert sorted(p.name for p in empty.iterdir()) == []


def test_a_mistyped_storage_path_is_named_and_not_created(empty: Path) -> None:
    code, out, err = hpo("studies", "--storage", "sqlite:///tpyo/hpo.db")
    assert_one_line_error(code, out, err, "no study store at", "tpyo/hpo.db", "--storage")
    assert not (empty / "tpyo").exists()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_store_of_the_other_kind_is_refused_untouched(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1, epochs=1)
    mlflow_db, study_db = Path("mlruns/mlflow.db").resolve(), Path("studies/hpo.db").resolve()
    before = digest(mlflow_db), digest(study_db)
    code, out, err = hpo("studies", "--storage", f"sqlite:///{mlflow_db}")
    assert_one_line_error(code, out, err, "is an MLflow tracking store, not a study store", "--tracking-uri")
    code, out, err = hpo("best", "--tracking-uri", f"sqlite:///{study_db}")
    assert_one_line_error(code, out, err, "is a study store, not an MLflow tracking store", "--storage")
    args = ["search", "--data-dir", data_dir, "--val-size", 200, "--trials", 2, "--study", "x"]
    code, out, err = hpo(*args, "--storage", f"sqlite:///{mlflow_db}")
    assert_one_line_error(code, out, err, "is an MLflow tracking store, not a study store")
    assert (digest(mlflow_db), digest(study_db)) == before


def test_a_failed_download_leaves_no_empty_folders(empty: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision makes DATA_DIR/MNIST/raw before it fetches: offline, with a mistyped
    --data-dir, that left empty folders behind."""
    from torchvision.datasets import MNIST

    def offline(self: MNIST) -> None:
        Path(self.raw_folder).mkdir(parents=True, exist_ok=True)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(MNIST, "download", offline)
    code, out, err = hpo("train", "--data-dir", "datsets", "--epochs", 1)
    assert_one_line_error(code, out, err, "mnist not found", "datsets/MNIST/raw")
    assert not (empty / "datsets").exists()
