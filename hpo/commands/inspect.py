"""Read-only commands over the study store: `hpo studies`, `hpo trials`."""

from __future__ import annotations

import typer

from hpo.commands import common

STUDY = typer.Option(None, "--study", help="Study name [default: the only study in the store].")


def studies(storage: str = common.STORAGE) -> None:
    """List the studies in a store with trial counts and best validation accuracy."""
    from hpo import report
    from hpo.study import summaries

    rows = summaries(storage)
    out = common.console()
    if not rows:
        out.print(f"No studies in {storage} yet: run `hpo search` to start one.")
        return
    out.print(report.studies_table(rows, storage=storage))


def trials(
    study: str | None = STUDY,
    storage: str = common.STORAGE,
    limit: int = typer.Option(0, "--limit", help="Show only the best N trials (0: all)."),
) -> None:
    """Print a study's trials sorted by validation accuracy."""
    from hpo import report
    from hpo.study import trial_rows

    name, rows = trial_rows(storage, study)
    common.console().print(report.trials_table(rows, title=f"Trials of '{name}'", limit=limit))
