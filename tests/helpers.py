"""Small helpers for invoking the CLI in-process."""

from __future__ import annotations

from typer.testing import CliRunner

from hpo.cli import app

runner = CliRunner()


def hpo(*args: object) -> tuple[int, str, str]:
    """Run `hpo ARGS` in-process; returns (exit code, stdout, stderr)."""
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code != 0, out + err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in out + err
    assert lines[0].startswith("error:")
    for needle in needles:
        assert needle in lines[0], lines[0]
