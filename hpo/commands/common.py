"""Options and helpers shared by several commands."""

from __future__ import annotations

import typer
from rich.console import Console

DATA_DIR = typer.Option(
    "data",
    "--data-dir",
    envvar="HPO_DATA_DIR",
    help="Folder with MNIST/ and FashionMNIST/ in torchvision's layout.",
)
DATASET = typer.Option("mnist", "--dataset", help="mnist or fashion-mnist.")
VAL_SIZE = typer.Option(10_000, "--val-size", help="Validation images carved from the training split.")
SPLIT_SEED = typer.Option(0, "--split-seed", help="Seed of the train/validation permutation.")
DEVICE = typer.Option("auto", "--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
SEED = typer.Option(0, "--seed", help="Seed for weights, batch order and the sampler.")
TRACKING_URI = typer.Option(
    None,
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    help="MLflow store [default: sqlite:///mlruns/mlflow.db].",
)
STORAGE = typer.Option(
    "sqlite:///studies/hpo.db",
    "--storage",
    envvar="HPO_STORAGE",
    help="Optuna storage URL (SQLite, PostgreSQL, MySQL...).",
)
QUIET = typer.Option(False, "--quiet", "-q", help="Print only the final result.")


def console() -> Console:
    """Standard output console, created per call so tests capture it; width follows COLUMNS."""
    return Console(highlight=False)
