"""Several processes on one SQLite study: every trial finishes, none is lost, no storage errors,
and the target total is met exactly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hpo.study import load_study, open_storage
from hpo.tracking import Tracker
from tests.conftest import env_for_subprocess
from tests.helpers import PYTHON_HPO, search_argv

pytestmark = pytest.mark.slow

SPACE = 'mlp_layers = 1\nmlp_width = [16, 32]\nbatch_size = [128, 256]\noptimizer = ["adam", "sgd"]\n'


def search_args(data_dir: Path, *, trials: int, jobs: int = 1) -> list[str]:
    return [*PYTHON_HPO, *search_argv(data_dir, trials=trials, epochs=2, study="shared", jobs=jobs)]


def check_store(trials: int) -> None:
    handle = load_study(open_storage("sqlite:///studies/hpo.db"), "shared")
    counts = handle.counts()
    assert (counts.finished, counts.failed, counts.running) == (trials, 0, 0)
    tracker = Tracker()
    runs = tracker.runs(tracker.experiment("shared"))
    parents = [r for r in runs if r.tags.get("hpo_role") == "study"]
    children = [r for r in runs if r.tags.get("hpo_role") != "study"]
    assert len(parents) == 1 and parents[0].status == "FINISHED"
    assert len(children) == trials and {r.status for r in children} <= {"FINISHED", "KILLED"}
    assert {r.attrs["mlflow_run_id"] for r in handle.rows()} == {r.run_id for r in children}


def test_four_processes_share_one_fresh_store(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a fresh folder: all four race to create both stores
    Path("space.toml").write_text(SPACE)
    procs = [
        subprocess.Popen(
            search_args(data_dir, trials=24),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env_for_subprocess(),
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out
        assert "locked" not in out.lower() and "Traceback" not in out
    check_store(24)


def test_jobs_runs_workers_with_one_display(workdir: Path, data_dir: Path) -> None:
    Path("space.toml").write_text(SPACE)
    done = subprocess.run(
        search_args(data_dir, trials=9, jobs=3),
        capture_output=True,
        text=True,
        timeout=400,
        env=env_for_subprocess(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Starting study 'shared'") == 1
    assert "reached 9/9" in done.stdout and "this call ran 9" in done.stdout
    check_store(9)
