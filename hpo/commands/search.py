"""`hpo search`: run (or resume) a study; live display on a terminal, a line per trial otherwise."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer
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

from hpo import report
from hpo.commands import common
from hpo.config import DataConfig, SearchConfig
from hpo.errors import ConfigError

EXIT_INTERRUPTED = 130


def default_study_name(dataset: str, model: str) -> str:
    return f"{dataset}-{model}"


def resume_command() -> str:
    return "hpo " + shlex.join(sys.argv[1:])


def search(
    trials: int = typer.Option(100, "--trials", help="Target total of finished trials in the study."),
    epochs: int = typer.Option(10, "--epochs", help="Maximum epochs per trial."),
    dataset: str = common.DATASET,
    data_dir: str = common.DATA_DIR,
    model: str = typer.Option("any", "--model", help="Model family to search: mlp, cnn or any."),
    space: Path | None = typer.Option(None, "--space", help="TOML file narrowing the search space."),
    study: str | None = typer.Option(None, "--study", help="Study name [default: DATASET-MODEL]."),
    storage: str = common.STORAGE,
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random, gp or cmaes."),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband, sha or none."),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop starting trials after SECONDS."),
    jobs: int = typer.Option(1, "--jobs", help="Worker processes running trials concurrently."),
    val_size: int = common.VAL_SIZE,
    split_seed: int = common.SPLIT_SEED,
    device: str = common.DEVICE,
    seed: int = common.SEED,
    tracking_uri: str | None = common.TRACKING_URI,
    quiet: bool = common.QUIET,
) -> None:
    """Search hyperparameters with Optuna; resumable, pruned, every trial tracked in MLflow."""
    from hpo.search import run_search
    from hpo.space import DEFAULT_SPACE, load_space_file, restrict_family
    from hpo.workers import run_parallel_search

    data_cfg = DataConfig(dataset=dataset, data_dir=data_dir, val_size=val_size, split_seed=split_seed)
    if model not in ("mlp", "cnn", "any"):
        raise ConfigError(f"unknown model {model!r}: choose mlp, cnn or any")
    cfg = SearchConfig(
        study=study or default_study_name(dataset, model),
        storage=storage,
        trials=trials,
        epochs=epochs,
        timeout=timeout,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        device=device,
        jobs=jobs,
        tracking_uri=tracking_uri,
    )
    chosen = restrict_family(load_space_file(space) if space else DEFAULT_SPACE, model)
    out = common.console()
    view = (QuietView if quiet else LiveView if out.is_terminal else PlainView)(out)
    with view:
        runner = run_parallel_search if cfg.jobs > 1 else run_search
        outcome = runner(cfg=cfg, data_cfg=data_cfg, space=chosen, observer=view)
    out.print(report.search_summary(outcome, storage=storage, resume=resume_command()))
    if outcome.stopped == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)


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
            report.start_line(study=study, done=done, target=target, resumed=resumed, device=device)
        )

    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None:
        self.out.print(report.trial_line(row=row, counts=counts, best=best))


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
        self.best_line = report.best_line(None)
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
            acc=f"val {report.pct(metrics.val_accuracy)}",
        )

    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None:
        self.out.print(report.trial_line(row=row, counts=counts, best=best))
        detail = f"pruned {counts.pruned} failed {counts.failed}"
        self.overall.update(self.overall_task, completed=counts.finished, detail=detail)
        self.best_line = report.best_line(best)
        self.live.update(self._render())
