"""The CLI root: every command has help; bad input is one line, exit != 0, no traceback;
--debug / HPO_DEBUG=1 show it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hpo.cli import app
from hpo.stores.optuna import StudyStore
from tests.helpers import PYTHON_HPO, assert_one_line_error, env_for_subprocess, hpo, search, search_argv
from tests.synthetic import VAL_SIZE, write_idx_images


def all_commands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_has_help() -> None:
    commands = all_commands()
    assert "train" in commands
    for name in commands:
        code, out, _ = hpo(name, "--help")
        assert code == 0 and "Usage" in out and len(out) > 200, name


def test_no_help_text_is_swallowed_as_markup() -> None:
    """Typer renders help with Rich: "[default: X]" written in a help string is read as a markup
    tag and vanishes from `--help`. Defaults in prose go in parentheses."""
    import re

    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            text = getattr(param, "help", None) or ""
            assert not re.search(r"\[/?[A-Za-z][^\]]*\]", text), (name, param.name, text)


def test_version_and_bare_help() -> None:
    assert hpo("--version")[1].startswith("hpo ")
    code, out, _ = hpo("--help")
    assert code == 0 and "train" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--lr", "-0.1"], "--lr must be a positive"),
        (["--dataset", "cifar10"], "'cifar10' is not one of 'mnist', 'fashion-mnist'"),
        (["--model", "rnn"], "'rnn' is not one of 'mlp', 'cnn', 'resnet'"),
        (["--optimizer", "lbfgs"], "unknown optimizer"),
        (["--hidden", "300,x"], "--hidden expects"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--val-size", "60000"], "use a smaller --val-size"),
        (["--epochs", "two"], "Invalid value for '--epochs'"),
        (["--no-such-flag"], "No such option"),
        (["--device", "cuda:7"], "not available"),
        (["--batch-size", "1"], "--batch-size must be at least 2"),
        (["--augment", "mixup"], "unknown augment 'mixup'"),
        (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
        (["--precision", "fp16"], "'fp16' is not one of 'fp32', 'bf16'"),
    ],
)
def test_bad_values_give_one_line(workdir: Path, data_dir: Path, args: list[str], needle: str) -> None:
    code, out, err = hpo("train", "--data-dir", data_dir, *args)
    assert_one_line_error(code, out, err, needle)


def test_missing_data_dir_is_one_line(workdir: Path, tmp_path: Path) -> None:
    code, out, err = hpo("train", "--data-dir", tmp_path / "missing", "--device", "cpu")
    assert_one_line_error(code, out, err, "train-images-idx3-ubyte", "--data-dir")
    assert code == 1


def test_debug_shows_traceback(workdir: Path, tmp_path: Path) -> None:
    from hpo.errors import DataError

    with pytest.raises(DataError):
        hpo("--debug", "train", "--data-dir", tmp_path / "missing", "--device", "cpu")


@pytest.mark.parametrize("command", ["best", "trials", "report"])
def test_missing_study(workdir: Path, data_dir: Path, command: str) -> None:
    search(data_dir, trials=1)
    code, out, err = hpo(command, "--study", "ghost")
    assert_one_line_error(code, out, err, "no study named 'ghost'", "studies: s")


def test_empty_store(workdir: Path) -> None:
    code, out, err = hpo("best")
    assert_one_line_error(code, out, err, "no study store at", "run `hpo search` here first")
    StudyStore("sqlite:///studies/hpo.db")  # a store without a study yet
    code, out, err = hpo("best")
    assert_one_line_error(code, out, err, "no studies yet", "hpo search")


def test_truncated_idx_through_cli(workdir: Path, data_dir: Path) -> None:
    labels = data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:50])
    code, out, err = hpo("train", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--device", "cpu")
    assert_one_line_error(code, out, err, str(data_dir / "MNIST" / "raw"), "truncated or not IDX")


def test_wrong_image_shape_through_cli(workdir: Path, data_dir: Path) -> None:
    write_idx_images(data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte", np.zeros((1200, 32, 32)))
    code, out, err = hpo("search", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--device", "cpu")
    assert_one_line_error(code, out, err, "expected (N, 28, 28)")


def test_hpo_debug_env_shows_traceback(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.errors import DataError

    monkeypatch.setenv("HPO_DEBUG", "1")
    with pytest.raises(DataError):
        hpo("train", "--data-dir", tmp_path / "missing", "--device", "cpu")


def test_the_resume_hint_runs_as_the_user_ran_hpo(workdir: Path, data_dir: Path) -> None:
    """The Quickstart installs into .venv without activating it: the hint must say .venv/bin/hpo,
    not an `hpo` the shell cannot find."""
    Path("bin").mkdir()
    shutil.copy(Path(sys.executable).with_name("hpo"), "bin/hpo")  # a console script, not on PATH
    Path("space.toml").write_text("mlp_layers = 1\nmlp_width = [32]\n")
    args = [*search_argv(data_dir, trials=3, epochs=1, study="s"), "--timeout", "0.001", "--no-warm-start"]
    env = {**env_for_subprocess(), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["bin/hpo", *args], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Resume with: bin/hpo {' '.join(args)}" in done.stdout
    by_module = subprocess.run([*PYTHON_HPO, *args], capture_output=True, text=True, timeout=300, env=env)
    assert f" -m hpo {' '.join(args)}" in by_module.stdout.split("Resume with: ", 1)[1]


def test_a_program_found_on_path_is_named_by_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.cli.main import program

    script = tmp_path / "hpo"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert program(str(script)) == "hpo"
    monkeypatch.setenv("PATH", "/usr/bin")
    assert program(str(script)) == str(script)


def test_help_shows_no_type_beside_a_flag_and_names_files_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = hpo("train", "--help")
    assert code == 0
    flags = [line for line in out.splitlines() if "--nesterov" in line or "--batch-norm" in line]
    assert len(flags) == 2 and not any("<bool>" in line for line in flags), flags
    assert "<int>" in next(line for line in out.splitlines() if "--epochs" in line)  # values keep theirs
    code, out, _ = hpo("predict", "--help")
    assert "predict [OPTIONS] IMAGE..." in out and "<list[Path]>" not in out and "{" not in out


@pytest.mark.parametrize(("command", "meaning"), [("train", "dropout"), ("baselines", "estimators")])
def test_a_seed_says_what_it_seeds_in_that_command(
    command: str, meaning: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    seed = next(line for line in hpo(command, "--help")[1].splitlines() if "--seed " in line)
    assert meaning in seed and "sampler" not in seed
