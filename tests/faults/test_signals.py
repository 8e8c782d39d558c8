"""Real processes, real signals: Ctrl-C, SIGTERM and kill -9 during a trial lose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import PYTHON_HPO, env_for_subprocess, hpo, mlflow_statuses, query, search_argv, states

SPACE = 'mlp_layers = 1\nmlp_width = [32]\nbatch_size = [32]\noptimizer = ["adam"]\n'
EPOCHS = 60  # long enough (about 2 s per trial) to be caught mid-trial


def command(data_dir: Path, *, trials: int) -> list[str]:
    return [*PYTHON_HPO, *search_argv(data_dir, trials=trials, epochs=EPOCHS, study="sig", pruner="none")]


def start_and_wait_for_epochs(data_dir: Path, *, trials: int, epochs: int = 3) -> subprocess.Popen[str]:
    """Start a search and return once its first trial has reported `epochs` epochs."""
    Path("space.toml").write_text(SPACE)
    proc = subprocess.Popen(
        command(data_dir, trials=trials),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env_for_subprocess(),
    )
    deadline = time.monotonic() + 120
    sql = "SELECT count(*) FROM trial_intermediate_values"
    while time.monotonic() < deadline:
        rows = query(Path("studies/hpo.db"), sql)
        if rows and rows[0][0] >= epochs:
            return proc
        if proc.poll() is not None:
            raise AssertionError(f"search exited early:\n{proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the first trial never reported an epoch")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_fails_trial_kills_run_and_prints_resume(workdir: Path, data_dir: Path, sig: int) -> None:
    proc = start_and_wait_for_epochs(data_dir, trials=3)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Interrupted: study 'sig'" in out and "Traceback" not in out
    assert " -m hpo search --data-dir" in out.split("Resume with: ", 1)[1]  # run as python -m hpo
    assert states() == {"FAIL": 1, "WAITING": 1}  # the interrupted configuration, queued to run again
    reason = query(
        Path("studies/hpo.db"), "SELECT value_json FROM trial_user_attributes WHERE key='fail_reason'"
    )
    assert "interrupted" in reason[0][0]
    assert mlflow_statuses() == {"KILLED": 2}  # the trial's run and the study's parent run


@pytest.mark.slow
def test_kill_9_then_resume_reaches_target(workdir: Path, data_dir: Path) -> None:
    proc = start_and_wait_for_epochs(data_dir, trials=2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert states() == {"RUNNING": 1} and mlflow_statuses().get("RUNNING") == 2
    # A smaller trial budget keeps the resumed run short; recovery happens before any new trial.
    done = subprocess.run(
        command(data_dir, trials=2), capture_output=True, text=True, timeout=300, env=env_for_subprocess()
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 trial(s) of a dead process marked failed" in done.stdout
    assert states() == {"FAIL": 1, "COMPLETE": 2}
    assert "RUNNING" not in mlflow_statuses()
    assert mlflow_statuses() == {"KILLED": 1, "FINISHED": 3}
    assert hpo("check")[0] == 0  # nothing left to repair once the next search has started


def test_signals_inside_deferred_block_are_delivered_after_it() -> None:
    from hpo.signals import deferred

    reached = []
    with pytest.raises(KeyboardInterrupt), deferred():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        reached.append("end of block")
    assert reached == ["end of block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_ctrl_c_during_an_mlflow_write_lands_after_it(workdir: Path) -> None:
    """The write is whole, the interrupt arrives right after, and the store is not left locked."""
    from hpo.stores.mlflow import MlflowStore

    store = MlflowStore()
    run_id = store.start_run(experiment_id=store.experiment("x"), name="r", tags={})
    real = store.client.log_batch

    def interrupted_write(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # delivered while the write is under way
        time.sleep(0.05)
        real(*args, **kwargs)  # type: ignore[arg-type]

    store.client.log_batch = interrupted_write  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        store.log_metrics(run_id, {"a": 1.0}, step=1)
    store.client.log_batch = real  # type: ignore[method-assign]
    started = time.monotonic()
    store.set_tags(run_id, {"state": "FAIL"})
    store.end_run(run_id, status="KILLED")
    assert time.monotonic() - started < 5  # no lock left behind
    run = store.run(run_id)
    assert run.metrics == {"a": 1.0} and run.status == "KILLED"


def test_ctrl_c_during_the_end_of_trial_write_is_deferred_not_lost(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial that was ending is recorded whole (COMPLETE, run FINISHED), then the search
    stops: before, the signal was ignored there and the search ran on."""
    from hpo.stores.runs import TrackedRun
    from tests.helpers import search

    real = TrackedRun.end

    def interrupted_end(self: TrackedRun, outcome: str, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        real(self, outcome, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TrackedRun, "end", interrupted_end)
    out = search(data_dir, trials=3)
    assert out.stopped == "interrupted" and out.ran == 0 and out.counts.complete == 1
    assert mlflow_statuses() == {"FINISHED": 1, "KILLED": 1}  # the trial's run; the parent run
