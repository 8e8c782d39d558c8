"""Faults a long search must survive: signals at exact phases (real processes, real signals),
out-of-memory, locked or unwritable stores, and a corrupt study store."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna import StudyStore
from tests.helpers import (
    FAULT_DRIVER,
    PYTHON_HPO,
    assert_one_line_error,
    env_for_subprocess,
    hpo,
    mlflow_statuses,
    open_study,
    query,
    search,
    search_argv,
    states,
)
from tests.synthetic import VAL_SIZE

SPACE = 'mlp_layers = 1\nmlp_width = [32]\nbatch_size = [256]\noptimizer = ["adam"]\n'


def faulty(fault: str, data_dir: Path, *, trials: int = 2) -> subprocess.CompletedProcess[str]:
    Path("space.toml").write_text(SPACE)
    args = search_argv(data_dir, trials=trials, epochs=3, study="f", pruner="none")
    command = [sys.executable, str(FAULT_DRIVER), fault, *args] if fault else [*PYTHON_HPO, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env_for_subprocess())


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["sigint-in-validation", "sigterm-in-validation", "sigint-in-upload"])
def test_interrupt_at_exact_phase_leaves_nothing_running(workdir: Path, data_dir: Path, fault: str) -> None:
    done = faulty(fault, data_dir)
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Resume with:" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert states() == {"FAIL": 1, "WAITING": 1}  # the interrupted configuration, queued to run again
    assert mlflow_statuses() == {"KILLED": 2}
    if fault != "sigint-in-validation":
        return  # one resume below is enough: the other phases leave the same records
    again = faulty("", data_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert states() == {"FAIL": 1, "COMPLETE": 2}
    assert hpo("check")[0] == 0  # nothing left to repair once the next search has started


@pytest.mark.slow
def test_sigkill_during_checkpoint_upload_is_never_best(workdir: Path, data_dir: Path) -> None:
    done = faulty("sigkill-in-upload", data_dir)
    assert done.returncode == -signal.SIGKILL
    handle = open_study("f")
    assert states() == {"RUNNING": 1} and handle.best() is None
    killed_run = handle.rows()[0].attrs[link.RUN_ID]
    again = faulty("", data_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    handle = open_study("f")
    assert states() == {"FAIL": 1, "COMPLETE": 2}
    assert handle.best().attrs[link.RUN_ID] != killed_run  # type: ignore[union-attr]
    assert MlflowStore().run(killed_run).status == "KILLED"
    assert hpo("check", "--study", "f")[0] == 0


@pytest.mark.slow
def test_sigkill_between_the_mlflow_end_and_the_optuna_tell(workdir: Path, data_dir: Path) -> None:
    """The run was closed FINISHED (with a checkpoint) but Optuna never heard: on resume the trial
    is FAIL, so its run must not stay FINISHED, and `hpo check` finds nothing left to repair."""
    done = faulty("sigkill-before-tell", data_dir)
    assert done.returncode == -signal.SIGKILL
    assert states() == {"RUNNING": 1} and mlflow_statuses().get("FINISHED") == 1
    killed_run = open_study("f").rows()[0].attrs[link.RUN_ID]
    again = faulty("", data_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert states() == {"FAIL": 1, "COMPLETE": 2}
    assert MlflowStore().run(killed_run).status == "KILLED"
    code, out, _ = hpo("check", "--study", "f")
    assert code == 0 and "nothing to repair" in out


def test_out_of_memory_fails_one_trial_and_the_study_continues(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hpo.search.trial

    calls = {"n": 0}
    real = hpo.search.trial.fit_config

    def oom_once(**kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(**kwargs)  # type: ignore[arg-type]

    freed = []
    monkeypatch.setattr(hpo.search.trial, "fit_config", oom_once)
    monkeypatch.setattr(hpo.search.trial, "_release_memory", lambda device: freed.append(device))
    out = search(data_dir, trials=2)
    assert (out.counts.failed, out.counts.finished) == (1, 2)
    assert freed == [torch.device("cpu")]  # only the out-of-memory trial collects and empties the cache
    failed = [r for r in open_study("s").rows() if r.state == "FAIL"]
    assert "out of memory" in failed[0].attrs["fail_reason"]
    run = MlflowStore().run(failed[0].attrs[link.RUN_ID])
    assert run.status == "FAILED" and "out of memory" in run.tags["fail_reason"]


def test_a_finished_trial_frees_its_model_without_the_garbage_collector(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trial.py runs no full collection after each trial: that holds only while nothing keeps a
    trial's model alive in a reference cycle (on a GPU its memory would stay taken)."""
    import gc
    import weakref

    import hpo.search.trial

    models: list[weakref.ref[torch.nn.Module]] = []
    real = hpo.search.trial.build_model

    def build(cfg: object) -> torch.nn.Module:
        model = real(cfg)  # type: ignore[arg-type]
        models.append(weakref.ref(model))
        return model

    monkeypatch.setattr(hpo.search.trial, "build_model", build)
    gc.collect()
    gc.disable()
    try:
        out = search(data_dir, trials=3)
        alive = [r() is not None for r in models]
    finally:
        gc.enable()
    assert out.counts.finished == 3 and alive == [False, False, False]


def _hold_lock(db: Path, seconds: float) -> threading.Thread:
    ready = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        ready.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait()
    return thread


def test_locked_mlflow_store_is_waited_for(workdir: Path) -> None:
    store = MlflowStore()
    run_id = store.start_run(experiment_id=store.experiment("x"), name="r", tags={})
    holder = _hold_lock(Path("mlruns/mlflow.db"), 1.5)
    store.log_metrics(run_id, {"a": 1.0}, step=1)  # blocks until the lock is released
    holder.join()
    assert store.run(run_id).metrics == {"a": 1.0}


def test_persistently_locked_store_is_retried_then_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock that outlasts SQLite's own busy wait (MLflow: 20 s per attempt) is retried with
    backoff, then reported in one line; the call that failed wrote nothing."""
    import hpo.stores.backoff
    from hpo.errors import TrackingError
    from hpo.stores.mlflow import calls

    sleeps: list[float] = []
    monkeypatch.setattr(hpo.stores.backoff.time, "sleep", sleeps.append)
    attempts = {"n": 0}

    def locked() -> None:
        attempts["n"] += 1
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(TrackingError, match="cannot log metrics: database is locked"):
        calls.call("log metrics", locked)
    assert attempts["n"] == calls.RETRIES and sleeps == sorted(sleeps) and len(sleeps) == attempts["n"] - 1


def test_unwritable_store_locations_are_one_line(workdir: Path, data_dir: Path) -> None:
    Path("afile").write_text("")
    code, out, err = hpo("search", "--data-dir", data_dir, "--storage", "sqlite:///afile/hpo.db")
    assert_one_line_error(code, out, err, "cannot create the study store folder")
    code, out, err = hpo(
        "train", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--tracking-uri", "sqlite:///afile/mlflow.db"
    )
    assert_one_line_error(code, out, err, "cannot create the MLflow store folder")


def test_corrupt_study_store_names_the_file_and_mlflow_still_reads(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1)
    Path("studies/hpo.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(f"studies/hpo.db{suffix}").unlink(missing_ok=True)
    for args in (["studies"], ["trials"], ["best"], ["report"]):
        code, out, err = hpo(*args)
        assert_one_line_error(code, out, err, "studies/hpo.db", "not a database")
    store = MlflowStore()
    assert len(store.runs(store.experiment("s"))) == 2  # MLflow's records are untouched
    StudyStore("sqlite:///studies/other.db")  # another store, made as a search makes one
    other = hpo("studies", "--storage", "sqlite:///studies/other.db")
    assert other[0] == 0 and "No studies" in other[1]


def test_a_full_study_store_is_one_line_with_its_cause(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected ENOSPC at the trial's end, as SQLite and Optuna report it: Optuna's message
    ("invalid data in the commit, e.g. exceeding max length") hid the cause."""
    import sqlite3

    import optuna

    real = optuna.storages.RDBStorage.set_trial_user_attr

    def full(self: optuna.storages.RDBStorage, trial_id: int, key: str, value: object) -> None:
        if key == link.OUTCOME:  # the trial's end: the disk filled up while it trained
            try:
                raise sqlite3.OperationalError("database or disk is full")
            except sqlite3.OperationalError as exc:
                message = (
                    "An exception is raised during the commit. This typically happens due to invalid data"
                )
                raise optuna.exceptions.StorageInternalError(message) from exc
        real(self, trial_id, key, value)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", full)
    Path("space.toml").write_text("mlp_layers = 1\nmlp_width = [32]\n")
    args = ["search", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--trials", 2, "--model", "mlp"]
    code, out, err = hpo(*args, "--space", "space.toml", "--device", "cpu", "--study", "full")
    needles = ("study store: cannot record trial attributes: database or disk is full", "free space")
    assert_one_line_error(code, out, err, *needles, "resume with: hpo search")


@pytest.mark.slow
def test_a_full_disk_under_both_stores(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both stores on a 12 MB tmpfs and 7 MB checkpoints: the search stops with one line naming
    the cause and the resume command; `hpo check` sees the trial left RUNNING by a process that
    is gone; a restart while still full says the same cause in one line."""
    disk = tmp_path / "full"
    disk.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        monkeypatch.chdir(disk)
        Path("space.toml").write_text("mlp_layers = 2\nmlp_width = [1024]\nbatch_size = [128]\n")
        argv = [*PYTHON_HPO, *search_argv(data_dir, trials=6, epochs=1, study="full", pruner="none")]
        first = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env_for_subprocess())
        lines = first.stderr.strip().splitlines()
        assert first.returncode == 1 and len(lines) == 1, first.stdout + first.stderr
        assert ("disk is full" in lines[0] or "No space left" in lines[0]) and "resume with:" in lines[0]
        code, out, _ = hpo("check")
        assert code == 1 and "is RUNNING but process" in " ".join(out.split()), out
        again = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env_for_subprocess())
        assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1, again.stderr
        assert "database or disk is full; free space" in again.stderr
    finally:
        monkeypatch.chdir(tmp_path)
        subprocess.run(
            ["umount", "--lazy", str(disk)], check=False
        )  # this process may still hold a connection


def leave_alembic_tmp(db: Path, table: str = "_alembic_tmp_experiments") -> None:
    """What a kill between an alembic batch copy and its rename leaves in a store."""
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE {table} (experiment_id INTEGER)")


@pytest.mark.parametrize("table", ["_alembic_tmp_experiments", "_alembic_tmp_params"])
def test_a_first_start_killed_while_the_store_was_made_is_redone(
    workdir: Path, data_dir: Path, table: str
) -> None:
    """2 of 21 kills 1-10 s into a first `hpo search` left such a table: every later call failed
    with 'table ... already exists', and `hpo check` said all was well."""
    leave_alembic_tmp(Path("mlruns/mlflow.db"), table)  # the workdir's store: made, no run yet
    search(data_dir, trials=1, epochs=1)
    assert table not in {n for (n,) in query(Path("mlruns/mlflow.db"), "SELECT name FROM sqlite_master")}
    assert hpo("check")[0] == 0


def test_a_store_with_runs_left_half_upgraded_is_refused_untouched(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1, epochs=1)
    db = Path("mlruns/mlflow.db")
    leave_alembic_tmp(db)
    before = db.read_bytes()
    code, out, err = hpo("best")
    assert_one_line_error(
        code, out, err, "was interrupted while its tables were being upgraded", "restore it"
    )
    assert db.read_bytes() == before
