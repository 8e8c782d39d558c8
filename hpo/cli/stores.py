"""Read-only commands over the stores: `hpo studies`, `hpo trials` and `hpo check`."""

from __future__ import annotations

import typer

from hpo.cli import options, render


def studies(storage: str = options.STORAGE) -> None:
    """List the studies in a store with trial counts and best validation accuracy."""
    from hpo.stores.workspace import Workspace

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
    from hpo.stores.workspace import Workspace

    handle = Workspace(storage=storage).study(study)
    table = render.trials_table(handle.rows(), title=f"Trials of '{handle.name}'", limit=limit)
    options.console().print(table)


def check(
    study: str | None = typer.Option(None, "--study", help="Study to check (default: every study)."),
    repair: bool = typer.Option(False, "--repair", help="Apply the safe repairs (never deletes a result)."),
    storage: str = options.STORAGE,
    tracking_uri: str | None = options.TRACKING_URI,
) -> None:
    """Check that the study store and the MLflow store agree; --repair fixes what is safe to fix."""
    from hpo.stores.check import check_study
    from hpo.stores.workspace import Workspace

    ws = Workspace(storage=storage, tracking_uri=tracking_uri)
    names = [ws.study(study).name] if study else ws.study_names()
    findings = [f for name in names for f in check_study(study=ws.study(name), store=ws.mlflow)]
    repaired = []
    for finding in findings if repair else []:
        if finding.fix is not None:
            finding.fix()
            repaired.append(finding)
    out = options.console()
    out.print(render.check_report(findings, repaired=repaired, studies=len(names)))
    if len(repaired) < len(findings):
        raise typer.Exit(1)
