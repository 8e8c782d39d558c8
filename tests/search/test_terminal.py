"""`hpo search` on a real terminal (a pseudo-terminal): the live display runs and the call ends.
Rich replaces sys.stdout while it is live, so only a real terminal shows what the tests' captured
consoles cannot: from 2026-11-29 to 2026-12-04 the display looped forever at 100% CPU."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import PYTHON_HPO, env_for_subprocess, search_argv

pytestmark = pytest.mark.slow


def run_on_a_terminal(argv: list[str], *, seconds: float) -> tuple[int | None, str]:
    """(exit code, None if it ran past `seconds`; everything it wrote to its terminal). This side
    keeps the terminal open until the end, so nothing the process wrote last is lost with it."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env_for_subprocess())
    out, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        ended = proc.poll() is not None  # asked before the read: what it wrote before it ended is read
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            out += os.read(leader, 65536)
        elif ended:
            break
    code = proc.poll()
    if code is None:
        proc.kill()
        proc.wait()
    os.close(follower)
    os.close(leader)
    return code, out.decode(errors="replace")


def test_a_search_on_a_terminal_shows_its_display_and_ends(workdir: Path, data_dir: Path) -> None:
    Path("space.toml").write_text("mlp_layers = 1\nmlp_width = [16]\nbatch_size = [128]\n")
    argv = [*PYTHON_HPO, *search_argv(data_dir, trials=3, epochs=2, study="tty")]
    code, out = run_on_a_terminal(argv, seconds=60)
    assert code == 0, out[-3000:]
    assert "Study 'tty' reached 3/3 finished trials" in out, out[-3000:]
