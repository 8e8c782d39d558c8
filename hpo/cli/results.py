"""Commands over a study's results: `hpo best` (and the test lockbox), `hpo report`,
`hpo predict`, `hpo ui`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer

from hpo.cli import options, render


def best(
    study: str | None = options.STUDY,
    storage: str = options.STORAGE,
    evaluate_test: bool = typer.Option(
        False, "--evaluate-test", help="Evaluate the best trial once on the test set."
    ),
    force: bool = typer.Option(False, "--force", help="Evaluate the test set again although it was used."),
    data_dir: str = options.DATA_DIR,
    device: str = options.DEVICE,
    out: Path | None = typer.Option(None, "--out", help="Folder for the test PNGs [default: reports/STUDY]."),
    tracking_uri: str | None = options.TRACKING_URI,
) -> None:
    """Show the best trial; with --evaluate-test, score it once on the held-out test set."""
    from hpo.lockbox import evaluate_test as evaluate
    from hpo.workspace import Workspace

    ws = Workspace(storage=storage, tracking_uri=tracking_uri)
    console = options.console()
    info = ws.best(study)
    console.print(render.best_view(info))
    if evaluate_test:
        result = evaluate(
            ws=ws,
            study=info.study,
            data_dir=data_dir,
            device=device,
            force=force,
            out_dir=out or Path("reports") / info.study,
        )
        console.print(render.test_view(result))


def report(
    study: str | None = options.STUDY,
    storage: str = options.STORAGE,
    out: Path | None = typer.Option(None, "--out", help="Folder for the PNG files [default: reports/STUDY]."),
    tracking_uri: str | None = options.TRACKING_URI,
) -> None:
    """Plot optimization history, parameter importances, parallel coordinates and validation curves."""
    from hpo.figures import write_report
    from hpo.workspace import Workspace

    result = write_report(ws=Workspace(storage=storage, tracking_uri=tracking_uri), study=study, out_dir=out)
    console = options.console()
    for path in result.files:
        console.print(f"wrote {path}")
    if result.logged_to:
        console.print(f"logged to MLflow run {result.logged_to} (artifacts/report)", style="dim")


def predict(
    images: list[Path] = typer.Argument(..., help="PNG or JPEG files, any size."),
    study: str | None = options.STUDY,
    storage: str = options.STORAGE,
    top: int = typer.Option(1, "--top", help="Show the N most likely labels."),
    device: str = options.DEVICE,
    tracking_uri: str | None = options.TRACKING_URI,
) -> None:
    """Classify image files with the study's best model."""
    from hpo.predict import predict_files
    from hpo.workspace import Workspace

    ws = Workspace(storage=storage, tracking_uri=tracking_uri)
    results = predict_files(ws=ws, paths=images, study=study, top=top, device=device)
    options.console().print(render.predictions_table(results, top=top))


def ui(
    port: int = typer.Option(5000, "--port", help="Port of the MLflow UI."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    tracking_uri: str | None = options.TRACKING_URI,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the commands instead of starting the UI."),
) -> None:
    """Start the MLflow UI on this project's store (Ctrl-C stops it)."""
    import shlex

    from hpo.mlflow_store import resolve_tracking_uri, ui_command

    command = ui_command(uri=tracking_uri, port=port, host=host)
    console = options.console()
    console.print(f"MLflow UI: http://{host}:{port}  (store {resolve_tracking_uri(tracking_uri)})")
    console.print("same as: " + shlex.join(["mlflow", *command[3:]]), style="dim")
    console.print(f"studies:  optuna-dashboard {options.STORAGE.default}", style="dim")
    if dry_run:
        return
    try:
        subprocess.run(command, check=False)
    except KeyboardInterrupt:
        console.print("MLflow UI stopped.")
