"""The two browsers of a project's results, and how to start them: the MLflow UI (runs, charts,
models) and optuna-dashboard (the study itself: history, importances, timeline). Builds their
command lines and deep links and runs a server as a child process; imports neither server."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpo.errors import ConfigError
from hpo.signals import sigterm_as_interrupt
from hpo.stores import link

MLFLOW_PORT, DASHBOARD_PORT = 5000, 8080  # each server's usual port
# MLflow's UI nests trial runs under the collapsed study run; a "shared view" (an experiment tag the
# UI reads when the URL names its key) can group the runs by role instead, every group open, trials
# sorted best first. (Expanded rows cannot be shared; groups can.)
VIEW_KEY = "hpo-study"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"


def study_view() -> dict[str, Any]:
    """The runs page a study opens on: grouped by hpo_role (trial, study, baseline, reproduce),
    trials sorted by their value, the value and state as columns."""
    value = f"metrics.`{link.BEST_VALUE}`"  # a trial's value; on the study's run, the study's best
    return {
        "orderByKey": value,
        "orderByAsc": False,
        "groupBy": {"aggregateFunction": "max", "groupByKeys": [{"mode": "tag", "groupByData": link.ROLE}]},
        "selectedColumns": [value, f"tags.`{link.STATE}`"],
    }


def runs_url(*, base: str, experiment_id: str) -> str:
    """The MLflow UI's page of an experiment's runs, in model-training mode (not GenAI), with the
    study view (`study_view`, once its tag is on the experiment)."""
    query = f"viewStateShareKey={VIEW_KEY}&workflowType=machine_learning"
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def dashboard_url(*, base: str, study_id: int) -> str:
    """optuna-dashboard's page of one study (its id in the Optuna store, not its name)."""
    return f"{base}/dashboard/studies/{study_id}"


def mlflow_command(*, uri: str, artifact_root: Path, port: int, host: str) -> list[str]:
    """`mlflow ui` on this project's tracking store and artifact root."""
    return [
        *(sys.executable, "-m", "mlflow", "ui"),
        *("--backend-store-uri", uri, "--default-artifact-root", artifact_root.as_uri()),
        *("--host", host, "--port", str(port)),
    ]


def dashboard_command(*, storage: str, port: int, host: str) -> list[str]:
    """optuna-dashboard on this project's study store (`storage`: an absolute URL)."""
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise ConfigError(
            'optuna-dashboard is not installed: pip install "hpo[dashboard]" (or optuna-dashboard)'
        )
    main = "import sys; from optuna_dashboard._cli import main; sys.argv[0] = 'optuna-dashboard'; main()"
    return [sys.executable, "-c", main, storage, "--host", host, "--port", str(port), "--quiet"]


def wait_until_up(url: str, *, seconds: float, server: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll `url` until it answers (True), the server exits or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (server is None or server.poll() is None):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return True
        except OSError:
            time.sleep(0.3)
    return False


# The leader of a server's process group on Linux: Linux signals it when the process that started
# it dies, even by kill -9 (PR_SET_PDEATHSIG), and it then ends the whole group. A server started
# alone outlived a killed `hpo ui`, still listening.
_GUARD = """
import ctypes, os, signal, subprocess, sys
ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
def stop(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
if os.getppid() != int(sys.argv[1]):
    stop()  # its starter died before the request above
sys.exit(subprocess.call(sys.argv[2:]))
"""


def start_server(command: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """Start a server in a process group of its own: `mlflow ui`/`mlflow server` start uvicorn,
    job consumers and worker processes, which outlive a parent stopped alone (each holds ~200 MB).
    On Linux the group dies with this process, however this process ends."""
    if sys.platform.startswith("linux"):
        command = [sys.executable, "-c", _GUARD, str(os.getpid()), *command]
    return subprocess.Popen(command, start_new_session=True, **popen)


def stop_server(server: subprocess.Popen[Any], *, wait_s: float = 30) -> None:
    """Stop a `start_server` server and every process it started: SIGTERM to its group, then
    SIGKILL to what is left after `wait_s` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        try:
            server.wait(timeout=wait_s)
            time.sleep(0.5)  # its children get the same signal; give them a moment to exit
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # anything still in the group after its leader
        return


def serve(
    command: list[str], *, base: str, on_ready: Callable[[], None], open_url: str = "", ready_s: float = 600
) -> int:
    """Run a server until it exits, Ctrl-C or SIGTERM (then stop it and all its processes). Once it
    answers at `base` (MLflow's UI takes ~35 s on a 2-core CPU), call `on_ready` and open
    `open_url` in a web browser if given: a link shown earlier fails when followed. Returns the
    server's exit code (0 when stopped)."""
    server = start_server(command)
    try:
        with sigterm_as_interrupt():
            if wait_until_up(base, seconds=ready_s, server=server):
                on_ready()
                if open_url:
                    webbrowser.open(open_url)
            return server.wait()
    except KeyboardInterrupt:
        stop_server(server)
        return 0
    finally:
        if server.poll() is None:
            stop_server(server)
