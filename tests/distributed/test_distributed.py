"""One study on three "hosts" sharing a real PostgreSQL server and a real `mlflow server` (with
proxied artifacts), on this one machine: a host killed mid-trial, the database and the tracking
server restarted while workers run, the test look from a fresh directory with only the URLs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from hpo.results.browsers import start_server, stop_server, wait_until_up
from hpo.stores import link
from hpo.stores.optuna import StudyStore, make_pruner, make_sampler
from tests.helpers import FAULT_DRIVER, PYTHON_HPO, env_for_subprocess, free_port, open_study
from tests.pg import Cluster, server_binaries
from tests.synthetic import VAL_SIZE

pytestmark = pytest.mark.slow
DRIVER = FAULT_DRIVER
SPACE = "mlp_layers = 1\nmlp_width = { low = 16, high = 64, log = true }\nbatch_size = [64, 128]\n"
TARGET = 15


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (Debian's postgresql) or not root")
    own = Cluster(bin_dir)  # its own: this test restarts it
    own.start()
    try:
        yield own
    finally:
        own.remove()


def tracking_server(*, backend: str, artifacts: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--serve-artifacts",
            "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1"]  # fmt: skip
    server = start_server(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_for_subprocess()
    )
    assert wait_until_up(f"http://127.0.0.1:{port}/health", seconds=120, server=server), (
        "mlflow server did not start"
    )
    return server


def wait_for(condition: object, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_study_reads_and_claims_wait_out_a_server_restart(cluster: Cluster) -> None:
    """Optuna's cache layer calls private storage methods (_get_trials, _create_new_trial...):
    while the server is down they wait for it, as the public ones do, instead of failing the
    worker (CI once saw _get_trials end a host during the restart in the test below)."""
    store = StudyStore(cluster.createdb("retry"))
    sampler, pruner = make_sampler("random", seed=0), make_pruner("none", epochs=1)
    handle = store.create_or_resume(name="r", sampler=sampler, pruner=pruner)
    assert handle.claim(target=5, attrs={}, sampler="random", seed=0) is not None
    cluster.stop()
    seen: dict[str, object] = {}

    def use_the_study() -> None:
        try:
            seen["rows"] = len(handle.rows())  # _get_trials
            seen["claimed"] = handle.claim(target=5, attrs={}, sampler="random", seed=0)  # _create_new_trial
        except Exception as exc:  # shown by the assertion below
            seen["error"] = exc

    user = threading.Thread(target=use_the_study)
    user.start()
    time.sleep(3)  # the calls are waiting on the stopped server by now
    cluster.start()
    user.join(timeout=120)
    assert "error" not in seen, seen.get("error")
    assert seen["rows"] == 1 and seen["claimed"] is not None


def test_a_store_opened_while_its_server_restarts_waits_for_it(cluster: Cluster) -> None:
    """A refused first connection fails at once (a wrong URL, more often than not), but a server
    that answers "shutting down" (SQLSTATE 57P03) is restarting: opening the store waits it out,
    through the seconds when the server refuses connections, until it is back."""
    import psycopg

    url = cluster.createdb("first")
    held = psycopg.connect(url.replace("+psycopg", ""))  # holds the smart shutdown open
    stopper = cluster.stop_when_sessions_end()

    def shutting_down() -> bool:
        try:
            psycopg.connect(url.replace("+psycopg", ""), connect_timeout=5).close()
        except psycopg.OperationalError as exc:
            return "shutting down" in str(exc)
        return False

    wait_for(shutting_down, seconds=60, what="the server to refuse new sessions")
    seen: dict[str, object] = {}

    def open_it() -> None:
        try:
            seen["storage"] = StudyStore(url)
        except Exception as exc:  # shown by the assertion below
            seen["error"] = exc

    opener = threading.Thread(target=open_it)
    opener.start()
    time.sleep(2)
    assert "error" not in seen, seen.get("error")  # waiting, not failed
    held.close()  # the server now stops: connections are refused outright
    assert stopper.wait(timeout=120) == 0
    time.sleep(2)
    assert "error" not in seen, seen.get("error")
    cluster.start()
    opener.join(timeout=120)
    assert "error" not in seen, seen.get("error")
    assert seen["storage"] is not None


def test_three_hosts_one_study_survive_a_kill_and_restarts(
    workdir: Path, data_dir: Path, cluster: Cluster, tmp_path: Path
) -> None:
    storage, backend = cluster.createdb("optuna"), cluster.createdb("mlflow")
    port = free_port()
    server = tracking_server(backend=backend, artifacts=tmp_path / "artifacts", port=port)
    tracking = f"http://127.0.0.1:{port}"
    Path("space.toml").write_text(SPACE)
    argv = ["search", "--study", "dist", "--storage", storage, "--data-dir", str(data_dir),
            "--val-size", str(VAL_SIZE), "--model", "mlp", "--space", "space.toml", "--trials", str(TARGET),
            "--epochs", "4", "--device", "cpu", "--no-warm-start", "-q"]  # fmt: skip

    def env(host: str) -> dict[str, str]:
        return env_for_subprocess(
            MLFLOW_TRACKING_URI=tracking, HPO_HOST_ID=host, HPO_HEARTBEAT_S="1", HPO_GRACE_S="4"
        )

    made = subprocess.run(
        [*PYTHON_HPO, *argv, "--create-only"], capture_output=True, text=True, env=env("coordinator")
    )
    assert made.returncode == 0, made.stdout + made.stderr
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    driver = [sys.executable, str(DRIVER), "slow-epochs", *argv]
    hosts = {h: subprocess.Popen(driver, env=env(h), **output) for h in "abc"}  # type: ignore[call-overload]
    study = open_study("dist", storage)

    def running_on(host: str) -> list[int]:
        """Trials training on `host`: claimed and linked to their MLflow run (a kill between the
        claim and the link leaves a run only its tags name; check.status_findings covers that)."""
        rows = study.rows(states=("RUNNING",))
        return [r.number for r in rows if r.attrs.get(link.OWNER_HOST) == host and link.RUN_ID in r.attrs]

    def started_on(host: str) -> bool:
        return any(r.attrs.get(link.OWNER_HOST) == host and link.RUN_ID in r.attrs for r in study.rows())

    try:
        # Every host past its start-up (both stores open, a trial linked), so the restarts below
        # hit running workers: a host opening its store while the server is already down gets a
        # plain refusal and fails at first contact, as it should (a wrong URL is likelier).
        wait_for(lambda: started_on("a") and started_on("c"), seconds=180, what="trials on hosts a and c")
        wait_for(lambda: running_on("b"), seconds=180, what="a trial training on host b")
        killed = running_on("b")[0]
        os.kill(hosts["b"].pid, signal.SIGKILL)
        assert hosts["a"].poll() is None and hosts["c"].poll() is None  # the restarts hit live workers
        cluster.restart()
        stop_server(server)
        server = tracking_server(backend=backend, artifacts=tmp_path / "artifacts", port=port)
        assert hosts["a"].poll() is None or hosts["c"].poll() is None, "the search ended before the restarts"
        for h in "ac":
            out, _ = hosts[h].communicate(timeout=600)
            assert hosts[h].returncode == 0, f"host {h}:\n{out[-3000:]}"
        _check_stores(storage=storage, tracking=tracking, killed=killed)
        _test_look_from_a_fresh_directory(
            tmp_path / "elsewhere", storage=storage, tracking=tracking, data_dir=data_dir
        )
    finally:
        stop_server(server, wait_s=10)
        for process in hosts.values():
            if process.poll() is None:
                process.kill()


def _check_stores(*, storage: str, tracking: str, killed: int) -> None:
    study = open_study("dist", storage)
    counts = study.counts()
    assert (counts.finished, counts.running) == (TARGET, 0)  # exactly the target; nothing RUNNING
    rows = {r.number: r for r in study.rows()}
    assert rows[killed].state == "FAIL" and "no heartbeat" in rows[killed].attrs[link.FAIL_REASON]
    assert any(r.attrs.get(link.RETRY_OF) == killed for r in rows.values())  # re-run, same parameters
    finished = [r for r in rows.values() if r.state in ("COMPLETE", "PRUNED")]
    fresh = [tuple(sorted(r.params.items())) for r in finished if link.RETRY_OF not in r.attrs]
    assert len(set(fresh)) == len(fresh)  # no two hosts drew the same configuration
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("dist")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert [r.data.tags.get(link.ROLE) for r in runs].count(link.ROLE_STUDY) == 1  # one parent run
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert client.get_run(rows[killed].attrs[link.RUN_ID]).info.status == "KILLED"
    hosts = {r.attrs.get(link.OWNER_HOST) for r in finished}
    assert {"a", "c"} <= hosts  # HPO_HOST_ID recorded on each trial


def _test_look_from_a_fresh_directory(folder: Path, *, storage: str, tracking: str, data_dir: Path) -> None:
    folder.mkdir()
    look = subprocess.run(
        [*PYTHON_HPO, "best", "--study", "dist", "--storage", storage, "--tracking-uri", tracking,
         "--evaluate-test", "--data-dir", str(data_dir), "--device", "cpu"],
        cwd=folder, capture_output=True, text=True, env=env_for_subprocess(), timeout=300,
    )  # fmt: skip
    assert look.returncode == 0, look.stdout + look.stderr
    assert "Test accuracy" in look.stdout or "test accuracy" in look.stdout.lower()
    assert not (folder / "mlruns").exists()  # the checkpoint came through the tracking server
