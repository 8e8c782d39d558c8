"""`hpo search --ray`: workers placed by Ray. The placement and the refusals are checked without
Ray; the slow tests run a local Ray instance and a two-node Ray cluster on this machine (two
`ray start`), with one node's processes killed mid-trial and a Ctrl-C on the driver."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpo.cli.main import _with_values
from hpo.errors import ConfigError
from hpo.search.ray_workers import Node, check_stores_reach, place
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from tests.helpers import (
    PYTHON_HPO,
    assert_one_line_error,
    env_for_subprocess,
    free_port,
    hpo,
    open_study,
    search_argv,
)

SPACE = 'mlp_layers = 1\nmlp_width = [16, 32]\nbatch_size = [32, 64]\noptimizer = ["adam", "sgd"]\n'
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}  # a test cluster, no token


def test_one_worker_per_gpu_else_per_node_each_fitting_a_node() -> None:
    cpu_nodes = [Node(address="a", cpus=8, gpus=0), Node(address="b", cpus=2, gpus=0)]
    assert place(nodes=cpu_nodes, jobs=None, device="auto") == place(nodes=cpu_nodes, jobs=2, device="cpu")
    two = place(nodes=cpu_nodes, jobs=None, device="auto")
    assert (two.workers, two.cpus, two.gpus, two.device) == (2, 2, 0, "cpu")  # 5 would not fit node b
    assert place(nodes=cpu_nodes, jobs=10, device="auto").cpus == 1
    gpu_nodes = [Node(address="a", cpus=16, gpus=4), Node(address="b", cpus=16, gpus=2)]
    six = place(nodes=gpu_nodes, jobs=None, device="auto")
    assert (six.workers, six.cpus, six.gpus, six.device) == (6, 1, 1, "cuda")
    on_cpus = place(nodes=gpu_nodes, jobs=None, device="cpu")
    assert (on_cpus.workers, on_cpus.gpus, on_cpus.cpus) == (2, 0, 16)
    assert "6 worker(s) of 1 CPU + 1 GPU on a cluster of 2 node(s)" in six.describe()
    idle_head = [Node(address="h", cpus=0, gpus=0), *cpu_nodes]  # a head kept free of work
    assert place(nodes=idle_head, jobs=None, device="auto") == two
    with pytest.raises(ConfigError, match="no GPU"):
        place(nodes=cpu_nodes, jobs=None, device="cuda")
    with pytest.raises(ConfigError, match="Ray gives each worker its device"):
        place(nodes=gpu_nodes, jobs=None, device="cuda:1")


def test_stores_in_files_need_every_node_on_this_machine() -> None:
    here = [Node(address="10.0.0.1", cpus=1, gpus=0)] * 2
    spread = [*here, Node(address="10.0.0.2", cpus=1, gpus=0)]
    sqlite, server = "sqlite:////p/studies/hpo.db", "postgresql://hpo@db/optuna"
    tracking = "sqlite:////p/mlruns/mlflow.db"
    check_stores_reach(storage=sqlite, tracking_uri=tracking, nodes=here, here="10.0.0.1")
    check_stores_reach(storage=server, tracking_uri="http://db:5000", nodes=spread, here="10.0.0.1")
    with pytest.raises(ConfigError, match=r"study store .* nodes at 10\.0\.0\.2: use --storage postgresql"):
        check_stores_reach(storage=sqlite, tracking_uri="http://db:5000", nodes=spread, here="10.0.0.1")
    with pytest.raises(ConfigError, match="MLflow store"):
        check_stores_reach(storage=server, tracking_uri="file:///p/mlruns", nodes=spread, here="10.0.0.1")


def test_ray_may_be_given_without_an_address() -> None:
    assert _with_values(["search", "--ray"]) == ["search", "--ray=local"]
    assert _with_values(["search", "--ray", "--jobs", "2"]) == ["search", "--ray=local", "--jobs", "2"]
    assert _with_values(["search", "--ray", "auto"]) == ["search", "--ray", "auto"]
    assert _with_values(["search", "--study", "x"]) == ["search", "--study", "x"]


def test_without_ray_installed_one_line_and_nothing_recorded(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when it is not installed
    Path("space.toml").write_text(SPACE)
    argv = search_argv(data_dir, trials=2, epochs=1, study="r")
    assert_one_line_error(*hpo(*argv, "--ray"), "pip install 'hpo[ray]'")
    assert not Path("studies").exists()
    assert_one_line_error(*hpo(*argv, "--ray", "--create-only"), "--create-only starts no workers")
    assert_one_line_error(*hpo(*argv, "--ray", "--jobs", "2", "--devices", "cpu,cpu"), "drop --devices")


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_an_address_nobody_answers_is_one_line_at_once(workdir: Path, data_dir: Path) -> None:
    Path("space.toml").write_text(SPACE)
    started = time.monotonic()
    argv = search_argv(data_dir, trials=2, epochs=1, study="r")
    assert_one_line_error(*hpo(*argv, "--ray", f"127.0.0.1:{free_port()}"), "no Ray cluster answers at")
    assert time.monotonic() - started < 10  # Ray alone retries for minutes
    assert not Path("studies").exists()


# --- with Ray: slow ---------------------------------------------------------------------------

needs_ray = pytest.mark.skipif(shutil.which("ray") is None, reason="Ray is not installed")


def _ray(*args: str) -> None:
    subprocess.run(
        ["ray", *args], check=True, capture_output=True, env=env_for_subprocess(**RAY_ENV), timeout=120
    )


@pytest.fixture()
def two_nodes() -> Iterator[tuple[str, int]]:
    """A Ray cluster of two one-CPU nodes on this machine: (its address, the second node's port)."""
    port, node_port = free_port(), free_port()
    head = ["start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false"]
    try:
        _ray(*head, "--disable-usage-stats")
        _ray("start", f"--address=127.0.0.1:{port}", "--num-cpus=1", f"--node-manager-port={node_port}")
        yield f"127.0.0.1:{port}", node_port
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=120)


def _pids(match: bytes) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if match in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running_owners(study: str) -> list[int]:
    """The processes running trials of the study now."""
    try:
        rows = open_study(study).rows(states=(link.RUNNING,)) if Path("studies/hpo.db").exists() else []
    except Exception:  # the study is not made yet
        return []
    return [int(r.attrs[link.OWNER_PID]) for r in rows if r.attrs.get(link.OWNER_PID)]


def _wait_for(what: str, check: object, seconds: float = 180) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()  # type: ignore[operator]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never {what}")


def _assert_whole(study: str, *, trials: int) -> None:
    """The target met exactly, nothing RUNNING in either store, `hpo check` clean."""
    counts = open_study(study).counts()
    assert (counts.finished, counts.running) == (trials, 0), counts
    store = MlflowStore()
    statuses = [r.status for r in store.runs(store.experiment(study))]
    assert "RUNNING" not in statuses, statuses
    code, out, err = hpo("check", "--study", study)
    assert code == 0 and "nothing to repair" in out, out + err


@pytest.mark.slow
@needs_ray
def test_a_dead_node_costs_one_failed_trial_and_the_target_stays_exact(
    workdir: Path, data_dir: Path, two_nodes: tuple[str, int]
) -> None:
    address, node_port = two_nodes
    Path("space.toml").write_text(SPACE)
    argv = [*PYTHON_HPO, *search_argv(data_dir, trials=8, epochs=30, study="r", pruner="none")]
    proc = subprocess.Popen(
        [*argv, "--ray", address, "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env_for_subprocess(**RAY_ENV),
    )
    raylet = _pids(f"--node_manager_port={node_port}".encode())
    assert len(raylet) == 1, raylet

    def second_node_mid_trial() -> bool:
        return bool(set(_running_owners("r")) & set(_children(raylet[0])))

    _wait_for("a trial running on the second node", second_node_mid_trial)
    for pid in [*_children(raylet[0]), raylet[0]]:  # the node's worker, agents, then its raylet
        os.kill(pid, signal.SIGKILL)
    out = proc.communicate(timeout=400)[0]
    assert proc.returncode == 0, out
    assert "Ray: 2 worker(s) of 1 CPU on a cluster of 2 node(s)" in out, out
    _assert_whole("r", trials=8)
    dead = [r for r in open_study("r").rows() if r.state == link.FAIL]
    assert len(dead) == 1 and "died during the trial" in dead[0].attrs[link.FAIL_REASON], dead


@pytest.mark.slow
@needs_ray
def test_ctrl_c_on_the_driver_stops_every_worker_and_leaves_nothing_running(
    workdir: Path, data_dir: Path
) -> None:
    Path("space.toml").write_text(SPACE)
    argv = [*PYTHON_HPO, *search_argv(data_dir, trials=20, epochs=30, study="r", pruner="none")]
    proc = subprocess.Popen(  # its own process group, as a terminal's foreground job
        [*argv, "--ray", "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env_for_subprocess(**RAY_ENV),
        start_new_session=True,
    )
    _wait_for("two trials running", lambda: len(_running_owners("r")) == 2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
    out = proc.communicate(timeout=180)[0]
    assert proc.returncode == 130, out
    assert "Interrupted" in out and "Traceback" not in out, out
    counts = open_study("r").counts()
    assert counts.running == 0 and counts.finished < 20, (counts, out)
    _assert_whole("r", trials=counts.finished)
