"""`hpo search --budget`: a wall clock for the whole call. The trial in flight stops at a batch
boundary and counts with its best epoch, recorded as cut short; the call ends on time, its best
model exported; the lockbox accepts a study whose call ended by its budget; the next call goes on."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from hpo.cli.options import duration
from hpo.errors import ConfigError
from hpo.stores import link
from tests.helpers import PYTHON_HPO, assert_one_line_error, env_for_subprocess, hpo, open_study, search_argv

# The call's start (imports, the stores, the estimate) took 12 s on a loaded 2-core AMD EPYC, and
# a quarter of the budget (at most 10 s) is kept for its end: 30 s leaves a trial ~10 s to train.
BUDGET_S = 30
SLOW = "mlp_layers = 2\nmlp_width = [1024]\nbatch_size = [64]\n"  # ~0.3 s an epoch here: 400 take minutes


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("20m", 1200), ("2h", 7200), ("1h30m", 5400), ("45", 45)]
)
def test_a_budget_reads_as_a_duration(text: str, seconds: float) -> None:
    assert duration(text, option="--budget") == seconds


@pytest.mark.parametrize("text", ["", "abc", "5x", "m"])
def test_a_bad_budget_is_one_line(workdir: Path, data_dir: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="--budget takes a duration like 90s, 20m, 2h"):
        duration(text, option="--budget")
    assert_one_line_error(
        *hpo("search", "--data-dir", data_dir, "--budget", "0s"), "--budget must be a positive"
    )


@pytest.mark.slow
def test_the_budget_holds_with_a_trial_in_flight(workdir: Path, data_dir: Path) -> None:
    Path("space.toml").write_text(SLOW)
    argv = [
        *PYTHON_HPO,
        *search_argv(data_dir, trials=20, epochs=400, study="b", pruner="none"),
        "--budget",
        f"{BUDGET_S}s",
    ]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env_for_subprocess())
    wall = time.monotonic() - start
    assert done.returncode == 0, done.stdout + done.stderr
    assert wall < BUDGET_S + 5, wall  # the call, process start and exit included (slack: this machine's load)
    assert "Budget spent: study 'b' has" in done.stdout and "Resume with:" in done.stdout
    handle = open_study("b")
    (cut,) = handle.rows(states=("COMPLETE",))
    assert 0 < cut.attrs[link.EPOCHS_RUN] < 400 and cut.attrs[link.FAIL_REASON].startswith("budget: ")
    assert handle.attr(link.LAST_STOP) == "budget" and handle.counts().running == 0
    finished = handle.counts().finished
    code, out, err = hpo("best", "--study", "b", "--evaluate-test", "--data-dir", data_dir)
    assert code == 0 and "test accuracy" in out, out + err  # a call that ended by its budget is done
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env_for_subprocess())
    assert again.returncode == 0 and "Resuming study 'b'" in again.stdout, again.stdout + again.stderr
    assert open_study("b").counts().finished > finished
