"""`hpo ui`: the MLflow UI on the study's runs, or optuna-dashboard on the study (`--optuna`)."""

from __future__ import annotations

import json
import shlex

import typer

from hpo.cli import options


def ui(
    study: str | None = typer.Option(None, "--study", help="Study to open (default: the most recent)."),
    optuna: bool = typer.Option(False, "--optuna", help="Start optuna-dashboard on the study store instead."),
    port: int | None = typer.Option(
        None, "--port", help="Port (default: 5000 MLflow, 8080 optuna-dashboard)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every one)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the study's page in a web browser."),
    storage: str = options.STORAGE,
    tracking_uri: str | None = options.TRACKING_URI,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the URL and command; start nothing."),
) -> None:
    """Start the MLflow UI (or optuna-dashboard) on this project's stores, at the study (Ctrl-C stops it)."""
    from hpo.errors import redact
    from hpo.results import browsers as servers

    if optuna:
        port = port or servers.DASHBOARD_PORT
        url, command, what = _dashboard(study=study, storage=storage, port=port, host=host)
    else:
        port = port or servers.MLFLOW_PORT
        url, command, what = _mlflow(study=study, tracking_uri=tracking_uri, port=port, host=host)
    console = options.console()
    program = "optuna-dashboard" if optuna else "mlflow"
    console.print("same as: " + shlex.join([program, *map(redact, command[3:])]), style="dim")
    if dry_run:
        console.print(what)
        return
    console.print(f"starting {program} (the link follows once it answers; Ctrl-C stops it)", style="dim")
    code = servers.serve(
        command,
        base=f"http://{host}:{port}",
        on_ready=lambda: console.print(what),
        open_url=url if open_browser else "",
    )
    if code:
        raise typer.Exit(code)
    console.print("stopped.")


def _mlflow(
    *, study: str | None, tracking_uri: str | None, port: int, host: str
) -> tuple[str, list[str], str]:
    from hpo.errors import StudyError
    from hpo.results.browsers import VIEW_TAG, mlflow_command, runs_url, study_view
    from hpo.stores.mlflow import MlflowStore

    store = MlflowStore(uri=tracking_uri, create=False)  # a browser shows a store; it makes none
    name = study or store.latest_experiment()
    experiment_id = store.find_experiment(name) if name else None
    if study and experiment_id is None:
        raise StudyError(
            f"the MLflow store has no experiment named {study!r}: run `hpo search --study {study}` first"
        )
    if experiment_id:
        store.set_experiment_tags(experiment_id, {VIEW_TAG: json.dumps(study_view())})
    base = f"http://{host}:{port}"
    url = runs_url(base=base, experiment_id=experiment_id) if experiment_id else base
    command = mlflow_command(uri=store.uri, artifact_root=store.artifact_root, port=port, host=host)
    return url, command, f"MLflow UI: {url}" + (f"  (study '{name}')" if experiment_id else "")


def _dashboard(*, study: str | None, storage: str, port: int, host: str) -> tuple[str, list[str], str]:
    from hpo.results.browsers import dashboard_command, dashboard_url
    from hpo.stores.sqlite import absolute
    from hpo.stores.workspace import Workspace

    ws = Workspace(storage=storage)
    names = ws.study_names()
    chosen = study or (names[0] if len(names) == 1 else None)
    base = f"http://{host}:{port}"
    url = dashboard_url(base=base, study_id=ws.study(chosen).id) if chosen else base
    command = dashboard_command(storage=absolute(storage), port=port, host=host)
    return url, command, f"optuna-dashboard: {url}" + (f"  (study '{chosen}')" if chosen else "")
