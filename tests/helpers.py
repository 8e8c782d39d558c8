"""Helpers every test folder shares: the CLI in-process, a small search, opening a study."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from hpo.cli import app
from hpo.config import DataConfig, SearchConfig
from hpo.search.run import run_search
from hpo.search.session import SearchOutcome
from hpo.search.space import Space, restrict_family
from hpo.search.space_file import parse_space
from hpo.stores.optuna import StudyHandle, StudyStore
from tests.synthetic import VAL_SIZE

runner = CliRunner()
STORE = "sqlite:///studies/hpo.db"  # the default study store, relative to the test's working directory
PYTHON_HPO = [sys.executable, "-m", "hpo"]  # for tests that need a real process
FAULT_DRIVER = Path(__file__).with_name("fault_driver.py")  # runs hpo with a fault injected


def open_study(name: str, storage: str = STORE) -> StudyHandle:
    """The study `name` as the search left it, read through a fresh handle on its store."""
    return StudyStore(storage).load(name)


def free_port() -> int:
    """A loopback port nobody listens on now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def search_argv(
    data_dir: Path, *, trials: int, epochs: int, study: str, pruner: str = "median", jobs: int = 1
) -> list[str]:
    """Arguments of a small MLP `hpo search` on synthetic data with ./space.toml."""
    return [
        "search",
        "--data-dir",
        str(data_dir),
        "--val-size",
        str(VAL_SIZE),
        "--trials",
        str(trials),
        "--epochs",
        str(epochs),
        "--model",
        "mlp",
        "--space",
        "space.toml",
        "--pruner",
        pruner,
        "--device",
        "cpu",
        "--study",
        study,
        "--jobs",
        str(jobs),
    ]


def hpo(*args: object) -> tuple[int, str, str]:
    """Run `hpo ARGS` in-process; returns (exit code, stdout, stderr)."""
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code != 0, out + err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in out + err
    assert lines[0].startswith("error:")
    for needle in needles:
        assert needle in lines[0], lines[0]


# Small, fast MLPs: trials take a fraction of a second on 1,000 synthetic images.
FAST = {
    "mlp_layers": {"low": 1, "high": 1},
    "mlp_width": {"low": 16, "high": 64, "log": True},
    "batch_size": [64, 128],
}


FIXED = {  # one configuration: every trial trains the same thing, only its seed differs
    "mlp_layers": 1,
    "mlp_width": [32],
    "activation": "relu",
    "dropout": [0.2],
    "batch_norm": [False],
    "optimizer": "sgd",
    "momentum": [0.9],
    "lr": [0.05],
    "weight_decay": [1e-5],
    "schedule": "none",
    "batch_size": [64],
    "augment": "shift",
    "label_smoothing": [0.0],
}


class Silent:
    def started(self, **_: Any) -> None: ...
    def trial_started(self, **_: Any) -> None: ...
    def progress(self, **_: Any) -> None: ...
    def epoch(self, **_: Any) -> None: ...
    def trial_finished(self, **_: Any) -> None: ...


def search(
    data_dir: Path,
    *,
    trials: int,
    epochs: int = 2,
    space: dict[str, Any] | str | None = None,
    val_size: int = VAL_SIZE,
    dataset: str = "mnist",
    study: str = "s",
    **kw: Any,
) -> SearchOutcome:
    """Run a search in-process (study 's' in studies/hpo.db) with the fast MLP space; `space="study"`
    passes no space, as `hpo search` without --space does."""
    chosen: Space | None = None
    if space != "study":
        chosen = restrict_family(parse_space(space if isinstance(space, dict) else FAST), "mlp")
    cfg = SearchConfig(
        study=study,
        storage=kw.pop("storage", "sqlite:///studies/hpo.db"),
        trials=trials,
        epochs=epochs,
        device=kw.pop("device", "cpu"),
        **kw,
    )
    data_cfg = DataConfig(dataset=dataset, data_dir=str(data_dir), val_size=val_size)
    return run_search(cfg=cfg, data_cfg=data_cfg, space=chosen, observer=Silent(), command="hpo search")


def env_for_subprocess(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HPO_"))}
    env.update(COLUMNS="160", PYTHONUNBUFFERED="1", **extra)
    return env


def query(db: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    """Rows of `sql` on the SQLite file `db`, read directly ([] before its tables exist)."""
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # tables not created yet
            return []


def states() -> dict[str, int]:
    """Trial states of ./studies/hpo.db, read directly: what a crashed process left."""
    rows = query(Path("studies/hpo.db"), "SELECT state, count(*) FROM trials GROUP BY state")
    return {str(state): int(n) for state, n in rows}


def mlflow_statuses() -> dict[str, int]:
    """Run statuses of ./mlruns/mlflow.db, read directly."""
    rows = query(Path("mlruns/mlflow.db"), "SELECT status, count(*) FROM runs GROUP BY status")
    return {str(status): int(n) for status, n in rows}


# A fresh interpreter, as a user serving the model would have: only mlflow, torch and numpy; it
# loads the model as `hpo best --register` prints (on the CPU, also on a machine with a GPU).
PREDICT = """
import json, sys, numpy as np, mlflow
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2], model_config={"device": "cpu"})
pixels, labels = np.load(sys.argv[3]), np.load(sys.argv[4])
probabilities = model.predict(pixels)
print(json.dumps({"accuracy": float((probabilities.argmax(1) == labels).mean()),
                  "row_sums": probabilities.sum(1)[:3].tolist(), "shape": list(probabilities.shape)}))
"""


def predict_in_fresh_process(uri: str, *, pixels: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    np.save("pixels.npy", pixels.astype(np.float32))
    np.save("labels.npy", labels)
    tracking = f"sqlite:///{Path('mlruns/mlflow.db').resolve()}"
    done = subprocess.run(
        [sys.executable, "-c", PREDICT, tracking, uri, "pixels.npy", "labels.npy"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def printed(out: str, label: str) -> str:
    """The command `hpo best --register` printed after `label`."""
    return next(line.split(label, 1)[1].strip() for line in out.splitlines() if line.startswith(label))


def post_when_up(base: str, payload: dict[str, object], *, seconds: float = 120) -> dict[str, Any]:
    """POST `payload` to the scoring server's /invocations once its /ping answers."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{base}/ping", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    request = urllib.request.Request(
        f"{base}/invocations", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    return dict(json.loads(urllib.request.urlopen(request, timeout=60).read()))
