"""A real browser (Debian's headless Chromium) on what `hpo ui` and `hpo report --html` serve: the
printed link opens the study's runs in model-training mode with every trial listed by name, and
the HTML report shows the study, its best value and its figures."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hpo.results.browsers import start_server, stop_server, wait_until_up
from tests.helpers import PYTHON_HPO, free_port, hpo, open_study, search

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian's package; .ci/run installs it)"),
]


def dom(url: str, *, budget_ms: int = 30_000) -> str:
    """The page's DOM after `budget_ms` of virtual time (scripts run, requests answered)."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--virtual-time-budget={budget_ms}",
         "--window-size=1400,900", "--dump-dom", url],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    return done.stdout


def test_hpo_ui_link_lists_the_trials_in_model_training_mode(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=3, epochs=1)
    port = free_port()
    server = start_server([*PYTHON_HPO, "ui", "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        first = next(line for line in server.stdout if line.startswith("MLflow UI: "))  # once it answers
        url = re.search(r"http://\S+", first)
        assert url and "workflowType=machine_learning" in url.group(0), first
        assert wait_until_up(f"http://127.0.0.1:{port}/health", seconds=90, server=server)
        page = ""
        for _ in range(3):  # a loaded machine may answer the runs request after the budget
            page = dom(url.group(0))
            if all(f"trial-000{i}" in page for i in range(3)):
                break
        for i in range(3):
            assert f"trial-000{i}" in page, page[-2000:]
        assert "Model training" in page and "Group: trial" in page
        assert "Detect issues in your traces" not in page  # not GenAI mode
    finally:
        stop_server(server)  # SIGTERM: `hpo ui` stops the MLflow UI and every process it started
    assert not wait_until_up(f"http://127.0.0.1:{port}/health", seconds=3), "the MLflow UI outlived hpo ui"


def test_html_report_shows_study_best_value_and_figures(searched: Path) -> None:
    code, out, err = hpo("report", "--html", "--out", "r")
    assert code == 0, out + err
    page = dom(Path("r/report.html").resolve().as_uri(), budget_ms=2_000)
    assert "Study s" in re.sub(r"<[^>]+>", "", page)
    trial = open_study("s").best()
    assert trial is not None and trial.value is not None
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert f"best validation accuracy {100 * trial.value:.2f}% (trial {trial.number})" in text, text[:1500]
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) >= 3
