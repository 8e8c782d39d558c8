"""Commands that use a study's results: `hpo best`, `hpo report`, `hpo predict`, `hpo ui`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer

from hpo.commands import common
from hpo.commands.inspect import STUDY


def best(
    study: str | None = STUDY,
    storage: str = common.STORAGE,
    evaluate_test: bool = typer.Option(
        False, "--evaluate-test", help="Evaluate the best trial once on the test set."
    ),
    force: bool = typer.Option(False, "--force", help="Evaluate the test set again although it was used."),
    data_dir: str = common.DATA_DIR,
    device: str = common.DEVICE,
    out: Path | None = typer.Option(None, "--out", help="Folder for the test PNGs [default: reports/STUDY]."),
    tracking_uri: str | None = common.TRACKING_URI,
) -> None:
    """Show the best trial; with --evaluate-test, score it once on the held-out test set."""
    from hpo import lockbox, report

    console = common.console()
    info = lockbox.best_info(storage=storage, study=study, tracking_uri=tracking_uri)
    console.print(report.best_view(info))
    if evaluate_test:
        result = lockbox.evaluate_test(
            storage=storage,
            study=info.study,
            tracking_uri=tracking_uri,
            data_dir=data_dir,
            device=device,
            force=force,
            out_dir=out or Path("reports") / info.study,
        )
        console.print(report.test_view(result))


def report_cmd(
    study: str | None = STUDY,
    storage: str = common.STORAGE,
    out: Path | None = typer.Option(None, "--out", help="Folder for the PNG files [default: reports/STUDY]."),
    tracking_uri: str | None = common.TRACKING_URI,
) -> None:
    """Plot optimization history, parameter importances, parallel coordinates and validation curves."""
    from hpo.reporting import write_report

    result = write_report(storage=storage, study=study, out_dir=out, tracking_uri=tracking_uri)
    console = common.console()
    for path in result.files:
        console.print(f"wrote {path}")
    if result.logged_to:
        console.print(f"logged to MLflow run {result.logged_to} (artifacts/report)", style="dim")


def predict(
    images: list[Path] = typer.Argument(..., help="PNG or JPEG files, any size."),
    study: str | None = STUDY,
    storage: str = common.STORAGE,
    top: int = typer.Option(1, "--top", help="Show the N most likely labels."),
    device: str = common.DEVICE,
    tracking_uri: str | None = common.TRACKING_URI,
) -> None:
    """Classify image files with the study's best model."""
    from rich.table import Table

    from hpo.predict import predict_files

    results = predict_files(
        paths=images, storage=storage, study=study, tracking_uri=tracking_uri, top=top, device=device
    )
    table = Table(header_style="bold", show_edge=False)
    for name in ("image", "label", "probability", *(["top"] if top > 1 else [])):
        table.add_column(name)
    for r in results:
        label, prob = r.top[0]
        others = ", ".join(f"{name} {100 * p:.1f}%" for name, p in r.top[1:])
        note = " (inverted)" if r.inverted else ""
        table.add_row(r.path + note, label, f"{100 * prob:.1f}%", *([others] if top > 1 else []))
    common.console().print(table)


def ui(
    port: int = typer.Option(5000, "--port", help="Port of the MLflow UI."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    tracking_uri: str | None = common.TRACKING_URI,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the commands instead of starting the UI."),
) -> None:
    """Start the MLflow UI on this project's store (Ctrl-C stops it)."""
    import shlex

    from hpo.tracking import resolve_tracking_uri, ui_command

    command = ui_command(uri=tracking_uri, port=port, host=host)
    console = common.console()
    console.print(f"MLflow UI: http://{host}:{port}  (store {resolve_tracking_uri(tracking_uri)})")
    console.print("same as: " + shlex.join(["mlflow", *command[3:]]), style="dim")
    console.print(f"studies:  optuna-dashboard {common.STORAGE.default}", style="dim")
    if dry_run:
        return
    try:
        subprocess.run(command, check=False)
    except KeyboardInterrupt:
        console.print("MLflow UI stopped.")
