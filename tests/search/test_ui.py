"""`hpo ui`: deep links and commands for the MLflow UI and optuna-dashboard; no password shown."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from hpo.results.browsers import start_server, stop_server, wait_until_up
from tests.helpers import PYTHON_HPO, env_for_subprocess, free_port, hpo, open_study, search


def test_mlflow_ui_dry_run_prints_the_command(workdir: Path) -> None:
    code, out, _ = hpo("ui", "--dry-run", "--port", 5123)
    assert code == 0
    assert "http://127.0.0.1:5123" in out and "mlflow ui --backend-store-uri sqlite:///" in out
    assert "--default-artifact-root" in out


def test_optuna_dashboard_dry_run_links_the_study(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1, epochs=1)
    study_id = open_study("s").id
    code, out, _ = hpo("ui", "--optuna", "--dry-run", "--port", 5124)
    assert code == 0, out
    assert f"http://127.0.0.1:5124/dashboard/studies/{study_id}  (study 's')" in out
    assert f"optuna-dashboard sqlite:///{workdir}/studies/hpo.db" in out  # absolute: any cwd works


def test_a_password_in_a_store_url_is_never_printed(workdir: Path) -> None:
    url = "postgresql+psycopg://me:s3cret@127.0.0.1:9/none"
    code, out, err = hpo("ui", "--optuna", "--dry-run", "--storage", url)
    assert code != 0 and "s3cret" not in out + err
    assert "postgresql+psycopg://me:***@127.0.0.1:9/none" in err


@pytest.mark.slow
def test_optuna_dashboard_serves_the_study_with_its_metric_named(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=2, epochs=1)
    study_id = open_study("s").id
    port = free_port()
    server = start_server([*PYTHON_HPO, "ui", "--optuna", "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        assert wait_until_up(f"http://127.0.0.1:{port}/api/meta", seconds=60, server=server)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/csv/{study_id}", timeout=10) as answer:
            header = answer.read().decode().splitlines()[0]
        assert "val_accuracy" in header and "Objective 0" not in header
    finally:
        stop_server(server)
    assert not wait_until_up(f"http://127.0.0.1:{port}/api/meta", seconds=3)  # nothing left serving


@pytest.mark.slow
def test_the_link_is_printed_once_the_server_answers(workdir: Path, data_dir: Path) -> None:
    """It was printed ~35 s before MLflow's UI answered: followed at once, it failed."""
    search(data_dir, trials=1, epochs=1)
    port = free_port()
    command = [*PYTHON_HPO, "ui", "--optuna", "--port", str(port)]
    server = start_server(command, stdout=subprocess.PIPE, text=True, env=env_for_subprocess())
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith("optuna-dashboard: http://"):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/meta", timeout=2).close()  # answers now
                break
        else:
            raise AssertionError("hpo ui exited without printing its link")
    finally:
        stop_server(server)


@pytest.mark.slow
def test_the_server_dies_with_a_killed_hpo_ui(workdir: Path, data_dir: Path) -> None:
    """kill -9 of `hpo ui` left its server listening, with nobody to stop it."""
    search(data_dir, trials=1, epochs=1)
    port = free_port()
    ui = subprocess.Popen([*PYTHON_HPO, "ui", "--optuna", "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        assert wait_until_up(f"http://127.0.0.1:{port}/api/meta", seconds=60)
    finally:
        ui.kill()  # SIGKILL: hpo ui runs no code of its own after this
        ui.wait()
    deadline = time.monotonic() + 15
    while wait_until_up(f"http://127.0.0.1:{port}/api/meta", seconds=1) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not wait_until_up(f"http://127.0.0.1:{port}/api/meta", seconds=1), "the server outlived hpo ui"
