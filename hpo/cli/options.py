"""Options shared by several commands, the console, and what the root hands down to commands."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, cast

import typer
from rich.console import Console

from hpo.config import DataConfig
from hpo.errors import ConfigError, redact

EXIT_INTERRUPTED = 130  # what a shell reports for a process ended by Ctrl-C


@dataclass(frozen=True)
class Invocation:
    """Set by the root as the Typer context's `obj`: the command line as the user typed it."""

    command: str  # e.g. "hpo search --trials 20", quoted so it can be pasted back


def process_started() -> float:
    """When this process began, on time.time()'s scale (Linux: its start in clock ticks after boot,
    plus the boot time), so a --budget includes the seconds of imports before any hpo code ran."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


_UNITS = {"h": 3600, "m": 60, "s": 1}


def duration(text: str | None, *, option: str) -> float | None:
    """'90s', '20m', '2h', '1h30m' or plain seconds ('1200') -> seconds; None when not given."""
    if text is None:
        return None
    spec = text.strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", spec)
    if not spec or parts is None or not any(parts.groups()):
        raise ConfigError(f"{option} takes a duration like 90s, 20m, 2h or 1h30m; got {text!r}")
    return sum(float(v) * unit for v, unit in zip(parts.groups(), _UNITS.values(), strict=True) if v)


def image_size(text: str | None) -> tuple[int, int] | None:
    """'32' -> (32, 32), '64x48' -> (64, 48) (height x width); None when not given."""
    if text is None:
        return None
    parts = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if parts is None:
        raise ConfigError(f"--image-size takes a size like 32 or 64x48 (height x width); got {text!r}")
    height = int(parts.group(1))
    return height, int(parts.group(2) or height)


def data_config(
    *,
    dataset: str | None,
    data: str | None,
    size: str | None,
    data_dir: str,
    val_size: int | None,
    split_seed: int,
) -> DataConfig:
    """The data a command reads: a registered `--dataset`, or a user's own `--data` PATH (named
    after its folder or file), never both."""
    if dataset is not None and data is not None:
        raise ConfigError(f"--dataset {dataset} and --data {data} name two datasets: give one")
    if size is not None and data is None:
        raise ConfigError("--image-size resizes the images of --data PATH; the registered datasets are 28x28")
    name = (Path(data).resolve().stem or "data") if data is not None else (dataset or "mnist")
    return DataConfig(
        dataset=name,
        data_dir=data_dir,
        val_size=val_size,
        split_seed=split_seed,
        path=data,
        image_size=image_size(size),
    )


def invocation(ctx: typer.Context) -> Invocation:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, Invocation) else Invocation(command="hpo")


DATA_DIR = typer.Option(
    "data",
    "--data-dir",
    envvar="HPO_DATA_DIR",
    help="Folder with MNIST/ and FashionMNIST/ in torchvision's layout.",
)
DATASET = typer.Option(None, "--dataset", help="A registered dataset: mnist (the default) or fashion-mnist.")
DATA = typer.Option(
    None,
    "--data",
    help="Your own images: a folder of class folders (PNG/JPEG), or an .npz with x, y [, x_test, y_test].",
)
IMAGE_SIZE = typer.Option(
    None, "--image-size", help="Resize a --data folder's images to this size: 32, or HxW like 64x48."
)
VAL_SIZE = typer.Option(
    None, "--val-size", help="Validation images carved from the training split (default: a sixth of it)."
)
SPLIT_SEED = typer.Option(0, "--split-seed", help="Seed of the train/validation permutation.")
PRECISION = typer.Option(
    "fp32",
    "--precision",
    help="fp32, or bf16: mixed precision (bfloat16 matmuls and convolutions; CNNs ~1.5x faster on AMX CPUs).",
)
DEVICE = typer.Option("auto", "--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
SEED = typer.Option(0, "--seed", help="Seed of the sampler; trial N trains with seed SEED + N.")
TRAIN_SEED = typer.Option(0, "--seed", help="Seed for weights, dropout, batch order and augmentation.")
BASELINE_SEED = typer.Option(
    0, "--seed", help="Seed of the estimators that draw (logistic regression, the MLP)."
)
TRACKING_URI = typer.Option(
    None,
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    help="MLflow store (default: sqlite:///mlruns/mlflow.db).",
)
STORAGE = typer.Option(
    "sqlite:///studies/hpo.db",
    "--storage",
    envvar="HPO_STORAGE",
    help="Optuna storage URL (SQLite, PostgreSQL, MySQL...).",
)
STUDY = typer.Option(None, "--study", help="Study name (default: the only study in the store).")
QUIET = typer.Option(False, "--quiet", "-q", help="Print only the final result.")


class Redacted:
    """A text stream that writes to another with every URL's password replaced by *** (`redact`):
    the CLI's consoles write through it, so no command can show a store URL's password, whatever
    it prints. The target is looked up at each write (tests swap sys.stdout)."""

    def __init__(self, target: Callable[[], TextIO]) -> None:
        self.lookup = target

    def target(self) -> TextIO:
        """The stream now, past Rich's own proxy: while a live display runs, sys.stdout is a proxy
        that prints through this very console, and writing to it looped forever (on a terminal,
        `hpo search` spun at 100% CPU without a line)."""
        stream = self.lookup()
        return cast(TextIO, getattr(stream, "rich_proxied_file", stream))

    def write(self, text: str) -> int:
        self.target().write(redact(text))
        return len(text)

    def flush(self) -> None:
        self.target().flush()

    def isatty(self) -> bool:
        return self.target().isatty()

    def fileno(self) -> int:
        return self.target().fileno()


def console(*, stderr: bool = False) -> Console:
    """A console on standard output (or error), created per call so tests capture it; tables follow
    COLUMNS. Lines are not wrapped (soft_wrap): a URL, path or command must stay whole to be
    clicked or pasted. Every password in what it prints is redacted."""
    stream = cast(TextIO, Redacted(lambda: sys.stderr if stderr else sys.stdout))  # a TextIO in use
    return Console(file=stream, highlight=False, soft_wrap=True)
