"""Fixtures every test folder shares: the synthetic datasets (`tests/synthetic.py`), an isolated
working directory with its own stores, a study already searched, a PostgreSQL cluster, the real
datasets, and `--device`; and each test's folder marker."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hpo.search.context import TrialContext
    from tests.pg import Cluster

from tests.synthetic import VAL_SIZE, make_dataset

# Real MNIST and Fashion-MNIST for the real_data tests: HPO_DATA_DIR as the user set it when the
# run started (tests clear it for the commands they run), else ../shared/datasets.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
REAL_DATA = Path(os.environ.get("HPO_DATA_DIR") or SHARED_DATA)
FOLDERS = ("unit", "search", "faults", "distributed", "real_data")  # one marker each


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="device for training tests: cpu, cuda, auto")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its folder's marker: `pytest -m unit`, `-m "not distributed"`."""
    for item in items:
        folder = item.path.parent.name
        if folder in FOLDERS:
            item.add_marker(getattr(pytest.mark, folder))


def pytest_configure(config: pytest.Config) -> None:
    """What the CLI root does once per process (tests call the library directly too)."""
    from hpo.stores.runtime import configure

    configure()
    # A suite started in the background (`cmd &` without job control) inherits SIGINT ignored,
    # and Python then installs no handler: every Ctrl-C test would see nothing happen. Take
    # Python's own handler back; the `hpo` processes the tests start then inherit the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture()
def trial_context(workdir: Path, data_dir: Path) -> TrialContext:
    """An open session of a 2-trial study "t", as `run_trials` builds it for one process."""
    import torch

    from hpo.config import DataConfig, SearchConfig
    from hpo.core.data import load_train_val
    from hpo.search.context import TrialContext
    from hpo.search.session import open_session, search_study
    from hpo.search.space import DEFAULT_SPACE
    from hpo.stores.workspace import Workspace
    from tests.helpers import STORE, Silent

    cfg = SearchConfig(study="t", storage=STORE, trials=2, epochs=2, device="cpu", warm_start=False)
    data_cfg = DataConfig(data_dir=str(data_dir), val_size=VAL_SIZE)
    data = load_train_val(data_cfg, device=torch.device("cpu"))
    ws = Workspace(storage=STORE, create=True)
    study = search_study(ws, cfg)
    tags = {"device": "cpu", "command": "test"}
    session = open_session(
        cfg=cfg, data_cfg=data_cfg, space=DEFAULT_SPACE, data=data, device_tags=tags, ws=ws, study=study
    )
    return TrialContext(
        cfg=cfg,
        data_cfg=data_cfg,
        space=session.space,
        data=data,
        device=torch.device("cpu"),
        store=ws.mlflow,
        study=study,
        experiment_id=session.experiment_id,
        parent_run_id=session.parent_run_id,
        tags=session.tags,
        observer=Silent(),
    )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster for the session (tests/pg.py); skipped where Debian's
    postgresql is not installed."""
    from tests.pg import Cluster, server_binaries

    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (Debian's postgresql) or not root")
    cluster = Cluster(bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def postgres_url(pg_cluster: Cluster) -> str:
    """A database "hpo" on the session's PostgreSQL cluster."""
    return pg_cluster.createdb("hpo")


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"no real MNIST in {REAL_DATA} (set HPO_DATA_DIR, or provide ../shared/datasets)")
    return REAL_DATA
