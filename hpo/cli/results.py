"""Commands over a study's results: `hpo best` (the test lockbox, the Model Registry),
`hpo reproduce`, `hpo baselines`, `hpo report`, `hpo predict`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hpo.cli import options, render_results
from hpo.config import DatasetName
from hpo.errors import ConfigError, StudyError

if TYPE_CHECKING:
    from hpo.stores.workspace import Workspace


def best(
    study: str | None = options.STUDY,
    storage: str = options.STORAGE,
    evaluate_test: bool = typer.Option(
        False, "--evaluate-test", help="Evaluate the best trial once on the test set."
    ),
    force: bool = typer.Option(False, "--force", help="Evaluate the test set again although it was used."),
    ensemble: int = typer.Option(
        1, "--ensemble", help="Also evaluate the mean of the top-K trials' softmax (chosen on validation)."
    ),
    pick: int | None = typer.Option(
        None, "--pick", metavar="TRIAL", help="Use this complete trial (e.g. a point of the front) instead."
    ),
    max_params: int | None = typer.Option(
        None, "--max-params", help="Use the most accurate complete trial of at most N parameters."
    ),
    data_dir: str = options.DATA_DIR,
    device: str = options.DEVICE,
    out: Path | None = typer.Option(None, "--out", help="Folder for the test PNGs (default: reports/STUDY)."),
    register: str | None = typer.Option(
        None,
        "--register",
        metavar="NAME",
        help="Put the best trial's model in the MLflow Model Registry as NAME.",
    ),
    tracking_uri: str | None = options.TRACKING_URI,
) -> None:
    """Show the best trial; with --evaluate-test, score it once on the held-out test set."""
    from hpo.stores.workspace import Workspace

    ws = Workspace(storage=storage, tracking_uri=tracking_uri)
    console = options.console()
    chosen = _chosen(ws, study=study, pick=pick, max_params=max_params)
    info = ws.best(study, pick=chosen)
    console.print(render_results.best_view(info))
    if info.spec is not None and info.spec.objective != "accuracy":
        from hpo.search.pareto import front

        rows = ws.study(info.study).rows()
        console.print(render_results.front_table(front(rows), objective=info.spec.objective))
    if evaluate_test:
        from hpo.results.lockbox import evaluate_test as evaluate  # torch: only for the test look

        result = evaluate(
            ws=ws,
            study=info.study,
            data_dir=data_dir,
            device=device,
            force=force,
            out_dir=out or Path("reports") / info.study,
            ensemble=ensemble,
            pick=chosen,
        )
        console.print(render_results.test_view(result))
    if register:  # after the test look, so the registered version records its result
        from hpo.results.registry import register_best

        registered = register_best(ws, study=info.study, name=register, pick=chosen)
        console.print(render_results.registered_line(registered))


def _chosen(ws: Workspace, *, study: str | None, pick: int | None, max_params: int | None) -> int | None:
    """The trial `hpo best` works on: --pick, the most accurate within --max-params, else the best."""
    if pick is not None and max_params is not None:
        raise ConfigError("--pick and --max-params both choose the trial: give one of them")
    if max_params is None:
        return pick
    from hpo.search.pareto import most_accurate_within

    found = most_accurate_within(ws.study(study).rows(), max_params=max_params)
    if found is None:
        raise StudyError(
            f"no complete trial has at most {max_params:,} parameters: raise --max-params, or search "
            "with --max-params or --objective accuracy,params"
        )
    return found.number


def reproduce(
    ctx: typer.Context,
    trial: int = typer.Option(..., "--trial", help="Number of the trial to retrain."),
    study: str | None = options.STUDY,
    storage: str = options.STORAGE,
    data_dir: str = options.DATA_DIR,
    device: str = options.DEVICE,
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic cuDNN/torch kernels."),
    tracking_uri: str | None = options.TRACKING_URI,
) -> None:
    """Retrain one trial from its recorded configuration and seed; compare validation accuracies."""
    from hpo.results.reproduce import reproduce_trial
    from hpo.stores.workspace import Workspace

    result = reproduce_trial(
        ws=Workspace(storage=storage, tracking_uri=tracking_uri),
        study=study,
        number=trial,
        data_dir=data_dir,
        device=device,
        deterministic=deterministic,
        command=options.invocation(ctx).command,
    )
    options.console().print(render_results.reproduction_view(result))


def baselines(
    ctx: typer.Context,
    study: str | None = typer.Option(
        None,
        "--study",
        help="Study whose split and experiment to use (default: the only study, else DATASET-baselines).",
    ),
    only: str = typer.Option("logistic,knn,sklearn-mlp", "--only", help="Comma-separated baselines to fit."),
    dataset: DatasetName | None = options.DATASET,
    data: str | None = options.DATA,
    image_size: str | None = options.IMAGE_SIZE,
    data_dir: str = options.DATA_DIR,
    val_size: int | None = options.VAL_SIZE,
    split_seed: int = options.SPLIT_SEED,
    seed: int = options.BASELINE_SEED,
    storage: str = options.STORAGE,
    tracking_uri: str | None = options.TRACKING_URI,
) -> None:
    """Fit classical baselines (logistic regression, k-NN, scikit-learn MLP) on a study's split."""
    from hpo.results.baselines import run_baselines
    from hpo.stores.spec import read_spec
    from hpo.stores.workspace import Workspace

    ws = Workspace(storage=storage, tracking_uri=tracking_uri, create_tracking=True)  # baselines are runs
    data_cfg = options.data_config(
        dataset=dataset,
        data=data,
        size=image_size,
        data_dir=data_dir,
        val_size=val_size,
        split_seed=split_seed,
    )
    experiment = study or f"{data_cfg.dataset}-baselines"
    if study or (ws.has_study_store() and ws.study_names()):  # a study's split wins over the data flags
        handle = ws.study(study)
        spec = read_spec(handle)
        experiment, data_cfg = handle.name, spec.data_config(data_dir=data_dir) if spec else data_cfg
    names = tuple(n.strip() for n in only.split(",") if n.strip())
    console = options.console()
    results = run_baselines(
        store=ws.mlflow,
        experiment=experiment,
        data_cfg=data_cfg,
        names=names,
        seed=seed,
        command=options.invocation(ctx).command,
        on_start=lambda n: console.print(
            f"Fitting {', '.join(names)} on {n:,} training images, one after another"
        ),
        on_fitted=lambda r: console.print(render_results.baseline_line(r)),
    )
    console.print(render_results.baselines_table(results, experiment=experiment))


def report(
    study: str | None = options.STUDY,
    storage: str = options.STORAGE,
    out: Path | None = typer.Option(None, "--out", help="Folder for the files (default: reports/STUDY)."),
    html: bool = typer.Option(False, "--html", help="Also write report.html: one self-contained page."),
    tracking_uri: str | None = options.TRACKING_URI,
) -> None:
    """Plot optimization history, parameter importances, parallel coordinates and validation curves."""
    from hpo.results.report import write_report
    from hpo.stores.workspace import Workspace

    ws = Workspace(storage=storage, tracking_uri=tracking_uri)
    result = write_report(ws=ws, study=study, out_dir=out, html_page=html)
    console = options.console()
    for path in result.files:
        console.print(f"wrote {path}")
    if result.logged_to:
        console.print(f"logged to MLflow run {result.logged_to} (artifacts/report)", style="dim")
    console.print(render_results.against_baseline(best=result.best, baseline=result.baseline))


def predict(
    images: list[Path] = typer.Argument(..., metavar="IMAGE...", help="PNG or JPEG files, any size."),
    study: str | None = options.STUDY,
    storage: str = options.STORAGE,
    top: int = typer.Option(1, "--top", help="Show the N most likely labels."),
    show_input: Path | None = typer.Option(
        None, "--show-input", help="Write the 28x28 images the model saw to this PNG file."
    ),
    device: str = options.DEVICE,
    tracking_uri: str | None = options.TRACKING_URI,
) -> None:
    """Classify image files with the study's best model."""
    from hpo.results.predict import predict_files
    from hpo.stores.workspace import Workspace

    ws = Workspace(storage=storage, tracking_uri=tracking_uri)
    results = predict_files(ws=ws, paths=images, study=study, top=top, device=device, show_input=show_input)
    console = options.console()
    console.print(render_results.predictions_table(results.items, top=top))
    if show_input is not None:
        console.print(f"wrote {show_input} (the 28x28 images the model saw, in order)")
    console.print(render_results.tested_note(results))
