"""Shared fixtures: tiny synthetic IDX datasets written in torchvision's layout (so tests go
through the real loading code), an isolated working directory for stores, and `--device`."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
TRAIN_IMAGES = 1200  # synthetic training split size (val carved from it)
TEST_IMAGES = 300
VAL_SIZE = 200


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="device for training tests: cpu, cuda, auto")


def pytest_configure(config: pytest.Config) -> None:
    """What the CLI root does once per process (tests call the library directly too)."""
    from hpo.stores.runtime import configure

    configure()


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the network: a dataset download fails at once, as it does offline, so
    tests of missing files mean the same with or without a connection."""
    from torchvision.datasets import MNIST

    def offline(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network in tests")

    monkeypatch.setattr(MNIST, "download", offline)  # FashionMNIST inherits it


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--device"))


def write_idx_images(path: Path, images: np.ndarray) -> None:
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">IIII", 0x0803, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">II", 0x0801, len(labels)) + labels.astype(np.uint8).tobytes())


def synthetic_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class c = a bright 7x7 square at one of 10 grid positions, on noise: learnable in 1 epoch."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, col = 2 + (c // 5) * 12, 1 + (c % 5) * 5
        images[i, r : r + 7, col : col + 5] = rng.integers(180, 256)
    return images


def make_dataset(root: Path, folder: str = "MNIST", seed: int = 0) -> Path:
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", TRAIN_IMAGES), ("t10k", TEST_IMAGES)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", synthetic_images(labels, rng))
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    make_dataset(root, "MNIST", seed=0)
    make_dataset(root, "FashionMNIST", seed=1)
    return root


@pytest.fixture()
def data_dir(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private copy, so a test may damage its files."""
    target = tmp_path / "datasets"
    shutil.copytree(synthetic_root, target)
    return target


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store created once (creating one runs ~3 s of migrations)."""
    import sqlite3

    from hpo.stores.mlflow import MlflowStore

    folder = tmp_path_factory.mktemp("mlflow-template")
    MlflowStore(uri=f"sqlite:///{folder}/mlflow.db", artifact_root=str(folder / "artifacts"))
    with sqlite3.connect(folder / "mlflow.db") as conn:  # fold the WAL into the file before copies
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return folder / "mlflow.db"


@pytest.fixture()
def workdir(tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder holding a fresh copy of the MLflow store, like a user's project."""
    work = tmp_path / "work"
    (work / "mlruns").mkdir(parents=True)
    shutil.copy(mlflow_template, work / "mlruns" / "mlflow.db")
    monkeypatch.chdir(work)
    for var in ("MLFLOW_TRACKING_URI", "HPO_DATA_DIR", "HPO_STORAGE", "HPO_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "160")  # pin Rich's width so table assertions are stable
    return work


@pytest.fixture()
def searched(workdir: Path, data_dir: Path) -> Path:
    """A study 's' with two complete-or-pruned MLP trials in the workdir's stores."""
    from tests.helpers import search

    search(data_dir, trials=2, epochs=2)
    return data_dir


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database "hpo" on a throwaway PostgreSQL cluster (tests/pg.py); skipped where Debian's
    postgresql is not installed."""
    from tests.pg import Cluster, server_binaries

    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (Debian's postgresql) or not root")
    cluster = Cluster(bin_dir)
    cluster.start()
    try:
        yield cluster.createdb("hpo")
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip("../shared/datasets is not present")
    return REAL_DATA


def env_for_subprocess(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HPO_"))}
    env.update(COLUMNS="160", PYTHONUNBUFFERED="1", **extra)
    return env
