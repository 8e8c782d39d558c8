"""`hpo search`: run (or resume) a study; live display on a terminal, a line per trial otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from hpo.cli import options, render
from hpo.cli.views import search_view
from hpo.config import DatasetName, ModelLimits, Objective, Precision, Pruner, Sampler, SearchConfig
from hpo.families import FamilyName


def search(
    ctx: typer.Context,
    trials: int = typer.Option(100, "--trials", help="Target total of finished trials in the study."),
    epochs: int = typer.Option(10, "--epochs", help="Maximum epochs per trial."),
    dataset: DatasetName | None = options.DATASET,
    data: str | None = options.DATA,
    image_size: str | None = options.IMAGE_SIZE,
    data_dir: str = options.DATA_DIR,
    model: Literal[FamilyName, "any"] = typer.Option(
        "any", "--model", help="Model family to search (default: any of them)."
    ),
    space: Path | None = typer.Option(
        None, "--space", help="TOML file narrowing the search space (default: the study's, or hpo's)."
    ),
    study: str | None = typer.Option(None, "--study", help="Study name (default: DATASET-MODEL)."),
    storage: str = options.STORAGE,
    sampler: Sampler = typer.Option("tpe", "--sampler", help="The sampler."),
    pruner: Pruner = typer.Option(
        "sha", "--pruner", help="sha: rungs at epochs 1, 3, 9 from the first trial."
    ),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop starting trials after SECONDS."),
    budget: str | None = typer.Option(
        None,
        "--budget",
        help="Wall clock for the whole call, e.g. 90s, 20m, 2h: the trial in flight stops too.",
    ),
    trial_timeout: float | None = typer.Option(
        None, "--trial-timeout", help="Stop a trial after the epoch that passes SECONDS of training (pruned)."
    ),
    objective: Objective = typer.Option(
        "accuracy", "--objective", help="accuracy, or accuracy and a size: a Pareto front."
    ),
    max_params: int | None = typer.Option(
        None, "--max-params", help="Only models of at most N parameters train (checked before training)."
    ),
    max_flops: int | None = typer.Option(
        None, "--max-flops", help="Only models of at most N FLOPs per image train (one forward pass)."
    ),
    max_latency_ms: float | None = typer.Option(
        None, "--max-latency-ms", help="Only models answering within X ms at batch 1 on the CPU train."
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        help="Workers running trials concurrently (default 1; with --ray one per GPU, else per node).",
    ),
    ray: str | None = typer.Option(
        None,
        "--ray",
        metavar="[ADDRESS]",
        help="Place the workers on Ray: auto, HOST:PORT, ray://HOST:PORT, or none for a local instance.",
    ),
    warm_start: bool = typer.Option(
        True, "--warm-start/--no-warm-start", help="A new study first tries hpo's known-good configurations."
    ),
    create_only: bool = typer.Option(
        False, "--create-only", help="Create the study and its MLflow runs, then exit: workers join later."
    ),
    val_size: int | None = options.VAL_SIZE,
    split_seed: int = options.SPLIT_SEED,
    device: str = options.DEVICE,
    devices: str = typer.Option(
        "", "--devices", help="--jobs workers' devices, round-robin, e.g. cuda:0,cuda:1 (default: every GPU)."
    ),
    precision: Precision = options.PRECISION,
    seed: int = options.SEED,
    tracking_uri: str | None = options.TRACKING_URI,
    quiet: bool = options.QUIET,
) -> None:
    """Search hyperparameters with Optuna; resumable, pruned, every trial tracked in MLflow."""
    started = options.process_started()  # --budget counts from the launch, as the user sees it
    from hpo.search.space import default_space
    from hpo.search.space_file import load_space_file

    data_cfg = options.data_config(
        dataset=dataset,
        data=data,
        size=image_size,
        data_dir=data_dir,
        val_size=val_size,
        split_seed=split_seed,
    )
    budget_s = options.duration(budget, option="--budget")
    cfg = SearchConfig(
        study=study or f"{data_cfg.dataset}-{model}",
        storage=storage,
        trials=trials,
        epochs=epochs,
        timeout=timeout,
        budget=budget_s,
        trial_timeout=trial_timeout,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        device=device,
        jobs=jobs,
        ray=ray,
        tracking_uri=tracking_uri,
        warm_start=warm_start,
        model=model,
        precision=precision,
        devices=tuple(d.strip() for d in devices.split(",") if d.strip()),
        limits=ModelLimits(max_params=max_params, max_flops=max_flops, max_latency_ms=max_latency_ms),
        objective=objective,
    )
    chosen = None  # the study's own space, or the default for its objective and limits
    if space:
        chosen = load_space_file(
            space, base=default_space(objective=objective, limits=cfg.limits, short_cpu_budget=False)
        )
    from hpo.search.run import run_search  # torch, MLflow, Optuna: ~3 s, after the input is checked

    out = options.console()
    command = options.invocation(ctx).command
    with search_view(out, quiet=quiet) as view:
        outcome = run_search(
            cfg=cfg,
            data_cfg=data_cfg,
            space=chosen,
            observer=view,
            command=command,
            create_only=create_only,
            started=started,
        )
    out.print(render.search_summary(outcome, storage=storage, resume=command))
    if outcome.stopped == "interrupted":
        raise typer.Exit(options.EXIT_INTERRUPTED)
