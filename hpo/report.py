"""Rich renderables built from plain data. Nothing here prints: the CLI renders what it gets."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from hpo.train import EpochMetrics


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def epoch_row(m: EpochMetrics) -> list[str]:
    return [
        str(m.epoch),
        f"{m.train_loss:.4f}",
        pct(m.train_accuracy),
        f"{m.val_loss:.4f}",
        pct(m.val_accuracy),
        f"{m.lr:.3g}",
        f"{m.epoch_seconds:.1f}",
    ]


def epoch_table(history: Sequence[EpochMetrics], *, best_epoch: int = 0, title: str = "") -> Table:
    table = Table(title=title or None, show_edge=False, header_style="bold")
    for name in ("epoch", "train loss", "train acc", "val loss", "val acc", "lr", "s"):
        table.add_column(name, justify="right")
    for m in history:
        table.add_row(*epoch_row(m), style="bold green" if m.epoch == best_epoch else None)
    return table


def train_result(
    *,
    outcome: str,
    best_epoch: int,
    best_val_accuracy: float,
    run_id: str,
    experiment: str,
    parameters: int,
    device: str,
    seconds: float,
) -> RenderableType:
    if outcome == "diverged":
        head = Text("Training diverged (non-finite loss): lower --lr. ", style="bold red")
    else:
        head = Text("Best validation accuracy ", style="bold")
        head.append(pct(best_val_accuracy), style="bold green")
        head.append(f" at epoch {best_epoch}. ")
    detail = Text(
        f"MLflow run {run_id} in experiment '{experiment}'; {parameters:,} parameters; "
        f"{device}; {seconds:.1f} s.",
        style="dim",
    )
    return Group(head, detail)
