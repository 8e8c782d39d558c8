"""Live terminal views: what `hpo search` shows while trials run (a live display on a terminal,
a line per event in pipes and logs, nothing with --quiet) and `hpo train`'s epoch progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hpo.cli import render

if TYPE_CHECKING:
    from hpo.core.engine import EpochMetrics


def search_view(out: Console, *, quiet: bool) -> QuietView:
    """The view for `hpo search`: quiet, live on a terminal, plain lines otherwise."""
    return (QuietView if quiet else LiveView if out.is_terminal else PlainView)(out)


class QuietView:
    """Prints nothing while running; the summary still follows."""

    def __init__(self, out: Console) -> None:
        self.out = out

    def __enter__(self) -> QuietView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def started(self, *, study: str, done: int, target: int, resumed: bool, device: str) -> None: ...
    def trial_started(self, *, number: int, params: dict[str, Any]) -> None: ...
    def epoch(self, *, number: int, metrics: Any, max_epochs: int) -> None: ...
    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None: ...


class PlainView(QuietView):
    """A line per event, for logs and pipes (stdout is not a terminal)."""

    def started(self, *, study: str, done: int, target: int, resumed: bool, device: str) -> None:
        self.out.print(
            render.start_line(study=study, done=done, target=target, resumed=resumed, device=device)
        )

    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None:
        self.out.print(render.trial_line(row=row, counts=counts, best=best))


class LiveView(PlainView):
    """Rich live display: overall progress, the current trial's epochs, best so far."""

    def __enter__(self) -> LiveView:
        self.overall = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.out,
        )
        self.current = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[acc]}"),
            console=self.out,
        )
        self.best_line = render.best_line(None)
        self.live = Live(self._render(), console=self.out, refresh_per_second=4, transient=True)
        self.live.__enter__()
        self.overall_task = self.overall.add_task("trials", total=1, detail="")
        self.trial_task = self.current.add_task("waiting", total=1, acc="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def _render(self) -> Group:
        return Group(self.overall, self.current, self.best_line)

    def started(self, *, study: str, done: int, target: int, resumed: bool, device: str) -> None:
        super().started(study=study, done=done, target=target, resumed=resumed, device=device)
        self.overall.update(self.overall_task, total=target, completed=min(done, target))

    def trial_started(self, *, number: int, params: dict[str, Any]) -> None:
        self.current.reset(self.trial_task, description=f"trial {number}", acc="")

    def epoch(self, *, number: int, metrics: Any, max_epochs: int) -> None:
        self.current.update(
            self.trial_task,
            total=max_epochs,
            completed=metrics.epoch,
            acc=f"val {render.pct(metrics.val_accuracy)}",
        )

    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None:
        self.out.print(render.trial_line(row=row, counts=counts, best=best))
        detail = f"pruned {counts.pruned} failed {counts.failed}"
        self.overall.update(self.overall_task, completed=counts.finished, detail=detail)
        self.best_line = render.best_line(best)
        self.live.update(self._render())


@contextmanager
def train_progress(out: Console, *, epochs: int) -> Iterator[Callable[[EpochMetrics], None]]:
    """`hpo train`'s live epoch bar and table; yields the per-epoch callback. The history it
    collects stays on the callback as `.history` for the final table."""
    history: list[EpochMetrics] = []
    progress = Progress(
        TextColumn("epoch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=out
    )
    task = progress.add_task("train", total=epochs)
    with Live(Group(progress), console=out, refresh_per_second=4, transient=True) as live:

        def on_epoch(metrics: EpochMetrics) -> None:
            history.append(metrics)
            progress.update(task, completed=metrics.epoch)
            live.update(Group(progress, render.epoch_table(history)))

        on_epoch.history = history  # type: ignore[attr-defined]
        yield on_epoch
