"""Read-only commands over the study store: `hpo studies`, `hpo trials`."""

from __future__ import annotations

import typer

from hpo.cli import options, render


def studies(storage: str = options.STORAGE) -> None:
    """List the studies in a store with trial counts and best validation accuracy."""
    from hpo.workspace import Workspace

    rows = Workspace(storage=storage).summaries()
    out = options.console()
    if not rows:
        out.print(f"No studies in {storage} yet: run `hpo search` to start one.")
        return
    out.print(render.studies_table(rows, storage=storage))


def trials(
    study: str | None = options.STUDY,
    storage: str = options.STORAGE,
    limit: int = typer.Option(0, "--limit", help="Show only the best N trials (0: all)."),
) -> None:
    """Print a study's trials sorted by validation accuracy."""
    from hpo.workspace import Workspace

    handle = Workspace(storage=storage).study(study)
    table = render.trials_table(handle.rows(), title=f"Trials of '{handle.name}'", limit=limit)
    options.console().print(table)
