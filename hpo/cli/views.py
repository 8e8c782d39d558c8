"""Live terminal views: what `hpo search` shows while trials run (a live display on a terminal,
a line per event in pipes and logs, nothing with --quiet) and `hpo train`'s epoch progress."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from hpo.cli import render

if TYPE_CHECKING:
    from hpo.core.engine import EpochMetrics
    from hpo.search.budget import CallEstimate
    from hpo.stores.optuna import Counts, TrialRow


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

    def started(
        self,
        *,
        study: str,
        target: int,
        counts: Counts,
        best: TrialRow | None,
        resumed: bool,
        device: str,
        estimate: CallEstimate | None,
        deadline: float | None,
    ) -> None: ...
    def trial_started(self, *, number: int, params: dict[str, Any], predicted_s: float | None) -> None: ...
    def progress(self, *, number: int, epoch: int, epochs: int, batch: int, batches: int) -> None: ...
    def epoch(self, *, number: int, metrics: Any, max_epochs: int) -> None: ...
    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None: ...


class PlainView(QuietView):
    """A line per event, for logs and pipes (stdout is not a terminal)."""

    def started(
        self,
        *,
        study: str,
        target: int,
        counts: Counts,
        best: TrialRow | None,
        resumed: bool,
        device: str,
        estimate: CallEstimate | None,
        deadline: float | None,
    ) -> None:
        done = counts.finished
        self.out.print(
            render.start_line(study=study, done=done, target=target, resumed=resumed, device=device)
        )
        if estimate is not None and done < target:
            left = None if deadline is None else max(0.0, deadline - time.time())
            self.out.print(render.estimate_line(estimate=estimate, device=device, budget_left=left))

    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None:
        self.out.print(render.trial_line(row=row, counts=counts, best=best))


def _now() -> float:
    """Seconds on a monotonic clock (a test replaces it to make trials slow)."""
    return time.monotonic()


class EtaColumn(ProgressColumn):
    """Time left for the search: this call's wall seconds per finished trial times the trials
    left, counting down between trials. Rich's TimeRemainingColumn estimates speed only from
    updates less than 30 s apart, so on a CPU, where a trial takes minutes, it never showed one."""

    def render(self, task: Task) -> Text:
        due = task.fields.get("due")  # time.monotonic() at which the last trial should end
        if due is None:
            return Text("ETA -:--:--", style="progress.remaining")
        left = max(0, round(due - _now()))
        return Text(f"ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}", style="progress.remaining")


class LiveView(PlainView):
    """Rich live display: overall progress with an ETA, the current trial's progress within and
    across epochs, the best trial so far."""

    def __enter__(self) -> LiveView:
        self.overall = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            EtaColumn(),
            console=self.out,
        )
        self.current = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[acc]}"), console=self.out
        )
        self.best_line = render.best_line(None)
        self.live = Live(self._render(), console=self.out, refresh_per_second=4, transient=True)
        self.live.__enter__()
        self.overall_task = self.overall.add_task("trials", total=1, detail="", due=None)
        self.trial_task = self.current.add_task("waiting", total=1, acc="")
        self.call_start, self.ran, self.target, self.finished = _now(), 0, 0, 0
        self.per_trial: float | None = None  # seconds per trial: measured, else predicted
        self.ends: float | None = None  # _now() at which --budget stops the trials
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def _render(self) -> Group:
        return Group(self.overall, self.current, self.best_line)

    def started(
        self,
        *,
        study: str,
        target: int,
        counts: Counts,
        best: TrialRow | None,
        resumed: bool,
        device: str,
        estimate: CallEstimate | None,
        deadline: float | None,
    ) -> None:
        super().started(
            study=study,
            target=target,
            counts=counts,
            best=best,
            resumed=resumed,
            device=device,
            estimate=estimate,
            deadline=deadline,
        )
        self.target, self.finished = target, counts.finished
        self.per_trial = estimate.epochs * estimate.epoch_s if estimate is not None else None
        self.ends = None if deadline is None else _now() + deadline - time.time()  # on _now()'s clock
        self._set_due(current=0.0, after=max(0, target - counts.finished))
        self._show_counts(counts)
        self.best_line = render.best_line(best)
        self.live.update(self._render())

    def _show_counts(self, counts: Counts) -> None:
        detail = f"pruned {counts.pruned} failed {counts.failed}"
        self.overall.update(
            self.overall_task, total=self.target, completed=min(counts.finished, self.target), detail=detail
        )

    def trial_started(self, *, number: int, params: dict[str, Any], predicted_s: float | None) -> None:
        self.current.reset(self.trial_task, description=f"trial {number}", acc="")
        left = max(0, self.target - self.finished)
        if predicted_s is not None and left:
            self._set_due(current=predicted_s, after=left - 1)

    def _set_due(self, *, current: float, after: int) -> None:
        """The ETA: the current trial's predicted seconds, then `after` trials at the mean seconds
        per trial (measured in this call once a trial finished, else predicted), within --budget."""
        if self.per_trial is None:
            return
        due = _now() + current + after * self.per_trial
        self.overall.update(self.overall_task, due=due if self.ends is None else min(due, self.ends))

    def progress(self, *, number: int, epoch: int, epochs: int, batch: int, batches: int) -> None:
        self.current.update(
            self.trial_task,
            description=f"trial {number} epoch {epoch}/{epochs}",
            total=epochs,
            completed=epoch - 1 + batch / batches,
            acc=f"batch {batch}/{batches}",
        )

    def epoch(self, *, number: int, metrics: Any, max_epochs: int) -> None:
        self.current.update(
            self.trial_task,
            total=max_epochs,
            completed=metrics.epoch,
            description=f"trial {number} epoch {metrics.epoch}/{max_epochs}",
            acc=f"val {render.pct(metrics.val_accuracy)}",
        )

    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None:
        self.out.print(render.trial_line(row=row, counts=counts, best=best))
        self.ran, self.finished = self.ran + 1, counts.finished
        self.per_trial = (_now() - self.call_start) / self.ran
        self._set_due(current=0.0, after=max(0, self.target - counts.finished))
        self._show_counts(counts)
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
