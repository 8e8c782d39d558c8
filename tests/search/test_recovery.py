"""Trials of dead processes: a trial whose owner on this host is dead is failed (an interruption:
its run KILLED) and a live owner's is left alone; a trial whose heartbeat stopped, on any host, is
failed and queued again once with the same parameters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpo.search.context import TrialContext
from hpo.search.recovery import recover_orphans, recover_stale
from hpo.search.trial import TrialRecorder
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna import StudyStore
from hpo.stores.owner import host_id, process_alive, process_token
from tests.helpers import STORE, open_study, search


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_process_is_known_by_its_pid_and_start_time() -> None:
    me = os.getpid()
    assert process_alive(me, process_token(me))
    assert not process_alive(me, "not-my-start-time")  # a later process that reused the pid
    assert not process_alive(dead_pid(), "")


def test_a_dead_owners_trial_is_failed_and_its_run_closed(trial_context: TrialContext) -> None:
    recorder = TrialRecorder.claim(trial_context)
    assert recorder is not None
    recorder.trial.set_attrs(**{link.OWNER_PID: dead_pid(), link.OWNER_TOKEN: ""})
    assert recover_orphans(study=trial_context.study, store=trial_context.store) == 1
    row = open_study("t").row(recorder.number)
    assert row.state == "FAIL" and row.attrs[link.OUTCOME] == "interrupted"
    assert "died during the trial" in row.attrs[link.FAIL_REASON]
    assert MlflowStore().run(recorder.run.run_id).status == "KILLED"


def test_a_live_owners_trial_is_left_running(trial_context: TrialContext) -> None:
    recorder = TrialRecorder.claim(trial_context)
    assert recorder is not None
    assert recover_orphans(study=trial_context.study, store=trial_context.store) == 0
    assert open_study("t").row(recorder.number).state == "RUNNING"


def test_a_stale_trial_is_failed_and_run_again_once(
    trial_context: TrialContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPO_HEARTBEAT_S", "1")
    monkeypatch.setenv("HPO_GRACE_S", "2")
    study = StudyStore(STORE).load("t")  # opened with the short heartbeat settings
    away = {link.OWNER_HOST: "another-host", link.OWNER_PID: 1}
    first = study.claim(target=2, attrs=away, sampler="random", seed=0)
    assert first is not None and host_id() != "another-host"
    time.sleep(3)
    assert recover_stale(study=study, store=trial_context.store) == 1
    rows = {r.number: r for r in study.rows()}
    assert rows[first.number].state == "FAIL"
    assert (
        rows[first.number].attrs[link.FAIL_REASON].startswith("no heartbeat from another-host for over 2 s")
    )
    (retry,) = [r for r in rows.values() if r.state == "WAITING"]
    assert retry.params == rows[first.number].params and retry.attrs[link.RETRY_OF] == first.number
    second = study.claim(target=2, attrs=away, sampler="random", seed=0)  # takes the queued retry
    assert second is not None and second.params == retry.params
    time.sleep(3)
    assert recover_stale(study=study, store=trial_context.store) == 1
    assert [r.state for r in study.rows()].count("WAITING") == 0  # a retry is not retried again


def test_a_trial_failed_by_another_process_is_dropped_and_the_search_goes_on(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another host failed trial 0 while it trained (its heartbeat came late, as while PostgreSQL
    restarted): its next write here is refused; the process ends the trial's run as failed, says
    why, and runs the next trials to the target (it used to exit with UpdateFinishedTrialError)."""
    from hpo.search import trial as trial_module

    real_epoch = trial_module.TrialRecorder.epoch

    def late(self: TrialRecorder, metrics: object, *, rungs: bool = True) -> bool:
        if self.number == 0:
            open_study("s").fail_running(0, attrs={link.FAIL_REASON: "stale: no heartbeat"})
        return real_epoch(self, metrics, rungs=rungs)  # type: ignore[arg-type]

    monkeypatch.setattr(trial_module.TrialRecorder, "epoch", late)
    outcome = search(data_dir, trials=2, epochs=2, warm_start=False)
    assert outcome.stopped == "target"
    rows = open_study("s").rows()
    assert [r.state for r in rows] == ["FAIL", "COMPLETE", "COMPLETE"]
    run = MlflowStore(uri=None).client.get_run(rows[0].attrs[link.RUN_ID])
    assert run.info.status == "FAILED" and "was ended by another process" in run.data.tags[link.FAIL_REASON]
