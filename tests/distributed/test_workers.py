"""`--jobs` workers and several processes on one SQLite study: every trial finishes, none is lost,
no storage errors, the target total is met exactly, and only the opening process ends the
study's parent run."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from hpo.errors import StudyError
from hpo.stores import link
from hpo.stores.link import OUTCOMES
from hpo.stores.mlflow import MlflowStore
from tests.helpers import PYTHON_HPO, env_for_subprocess, open_study, search_argv

pytestmark = pytest.mark.slow

SPACE = 'mlp_layers = 1\nmlp_width = [16, 32]\nbatch_size = [128, 256]\noptimizer = ["adam", "sgd"]\n'


def search_args(data_dir: Path, *, trials: int, jobs: int = 1) -> list[str]:
    return [*PYTHON_HPO, *search_argv(data_dir, trials=trials, epochs=2, study="shared", jobs=jobs)]


def check_store(trials: int) -> None:
    handle = open_study("shared")
    counts = handle.counts()
    assert (counts.finished, counts.failed, counts.running) == (trials, 0, 0)
    store = MlflowStore()
    runs = store.runs(store.experiment("shared"))
    parents = [r for r in runs if r.tags.get("hpo_role") == "study"]
    children = [r for r in runs if r.tags.get("hpo_role") != "study"]
    assert len(parents) == 1 and parents[0].status == "FINISHED"
    assert len(children) == trials
    models = store.client.search_logged_models(experiment_ids=[store.experiment("shared")])
    assert len(models) == 1  # processes ending together export the best trial once, not once each
    by_id = {r.run_id: r for r in children}
    for row in handle.rows():
        assert (row.state, by_id[link.run_id(row)].status) == OUTCOMES[row.attrs[link.OUTCOME]]


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
    assert "reached 9/9" in done.stdout and "This call ran 9 trial(s)." in done.stdout
    check_store(9)


def test_workers_never_end_the_parent_run(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker runs only the trial loop: it ends its trials' runs, never the study's."""
    import torch

    from hpo.config import DataConfig, SearchConfig
    from hpo.core.data import load_train_val
    from hpo.search import workers
    from hpo.search.session import close_session, open_session
    from hpo.search.space import restrict_family
    from hpo.search.space_file import parse_space
    from tests.helpers import FAST
    from tests.synthetic import VAL_SIZE

    cfg = SearchConfig(
        study="w", storage="sqlite:///studies/hpo.db", trials=2, epochs=1, device="cpu", jobs=2
    )
    data_cfg = DataConfig(data_dir=str(data_dir), val_size=VAL_SIZE)
    space = restrict_family(parse_space(FAST), "mlp")
    data = load_train_val(data_cfg, device=torch.device("cpu"))
    session = open_session(cfg=cfg, data_cfg=data_cfg, space=space, data=data, device_tags=_tags())
    ended: list[str] = []
    real_end = MlflowStore.end_run

    def spy(self: MlflowStore, run_id: str, *, status: str) -> None:
        ended.append(run_id)
        real_end(self, run_id, status=status)

    monkeypatch.setattr(MlflowStore, "end_run", spy)
    threads = torch.get_num_threads()
    events: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
    try:
        workers._worker(0, session, events)  # in this process, so the spy sees every call
    finally:
        torch.set_num_threads(threads)
    kinds = [events.get_nowait()[0] for _ in range(events.qsize())]
    assert kinds[-1] == "done" and kinds.count("trial_finished") == 2
    assert len(ended) == 2 and session.parent_run_id not in ended
    store = MlflowStore()
    assert store.run_status(session.parent_run_id) == "RUNNING"
    outcome = close_session(session, ran=2, stopped="target")
    assert outcome.counts.finished == 2 and store.run_status(session.parent_run_id) == "FINISHED"
    assert ended.count(session.parent_run_id) == 1


def _tags() -> dict[str, str]:
    return {"device": "cpu", "dataset": "mnist"}


def _statuses(db: Path) -> tuple[str, list[str]]:
    """(parent run status, child run statuses) read straight from the MLflow SQLite file."""
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute(
                "SELECT r.status, t.value FROM runs r LEFT JOIN tags t "
                "ON t.run_uuid = r.run_uuid AND t.key = 'hpo_role'"
            ).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return "", []
    parent = next((status for status, role in rows if role == "study"), "")
    return parent, [status for status, role in rows if role != "study"]


def test_jobs_parent_run_stays_running_until_the_last_worker_is_done(workdir: Path, data_dir: Path) -> None:
    Path("space.toml").write_text(  # one learnable configuration: every trial completes
        'mlp_layers = 1\nmlp_width = [32]\nbatch_size = [32]\noptimizer = ["adam"]\nlr = [0.001]\n'
        'augment = "none"\nactivation = "relu"\n'
    )
    args = [*PYTHON_HPO, *search_argv(data_dir, trials=5, epochs=8, study="p", pruner="none", jobs=2)]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_for_subprocess()
    )
    seen_running_children, db = 0, Path("mlruns/mlflow.db")
    while proc.poll() is None:
        parent, children = _statuses(db)
        if "RUNNING" in children:
            seen_running_children += 1
            assert parent == "RUNNING", (parent, children)
        time.sleep(0.05)
    out = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 0, out
    assert seen_running_children > 0
    parent, children = _statuses(db)
    assert parent == "FINISHED" and children == ["FINISHED"] * 5
    with sqlite3.connect(db) as conn:
        ends = dict(
            conn.execute(
                "SELECT t.value = 'study', max(r.end_time) FROM runs r LEFT JOIN tags t "
                "ON t.run_uuid = r.run_uuid AND t.key = 'hpo_role' GROUP BY 1"
            ).fetchall()
        )
    assert ends[1] >= ends[0]  # the parent ended after the last trial


def running_trials(study: str) -> int:
    """RUNNING trials of the study, 0 while the search has not made it yet."""
    try:
        return open_study(study).counts().running if Path("studies/hpo.db").exists() else 0
    except StudyError:  # the store exists, the study not yet
        return 0


def worker_pids(parent: int) -> list[int]:
    """The `--jobs` worker processes of `parent` (multiprocessing's resource tracker is not one)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    commands = {int(c): Path(f"/proc/{c}/cmdline").read_bytes() for c in children}
    return [pid for pid, cmd in commands.items() if b"spawn_main" in cmd and b"resource_tracker" not in cmd]


def test_a_killed_worker_costs_no_wait_and_the_call_ends_at_its_target(workdir: Path, data_dir: Path) -> None:
    """The survivor used to wait out the dead worker's heartbeat (2 minutes) although its owner
    was on this host and provably dead, then the call exited 1, ended the parent run FAILED and
    exported no model, though every trial had finished."""
    Path("space.toml").write_text(SPACE)
    argv = [*PYTHON_HPO, *search_argv(data_dir, trials=6, epochs=40, study="shared", pruner="none", jobs=2)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env_for_subprocess()
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = running_trials("shared")
        workers = worker_pids(proc.pid)
        if running == 2 and len(workers) == 2:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("never two trials running at once")
    os.kill(workers[0], signal.SIGKILL)
    killed_at = time.monotonic()
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert time.monotonic() - killed_at < 90, "waited for the dead worker's heartbeat"  # grace is 120 s
    handle = open_study("shared")
    counts = handle.counts()
    assert (counts.finished, counts.failed, counts.running) == (6, 1, 0), counts
    dead = next(r for r in handle.rows() if r.state == "FAIL")
    assert "died during the trial" in dead.attrs[link.FAIL_REASON]
    store = MlflowStore()
    assert store.run(link.parent_run_id(handle)).status == "FINISHED"
    best = handle.best()
    assert best is not None and store.run(link.run_id(best)).tags[link.MODEL_URI].startswith("models:/")
