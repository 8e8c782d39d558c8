"""`hpo train`: one configuration from flags, logged as one MLflow run."""

from __future__ import annotations

import typer

from hpo.cli import options, render
from hpo.cli.views import train_progress
from hpo.config import DatasetName, ModelConfig, OptimConfig, Precision, TrainConfig, parse_int_list
from hpo.families import FamilyName


def train(
    ctx: typer.Context,
    dataset: DatasetName | None = options.DATASET,
    data: str | None = options.DATA,
    image_size: str | None = options.IMAGE_SIZE,
    data_dir: str = options.DATA_DIR,
    model: FamilyName = typer.Option("mlp", "--model", help="The model family."),
    hidden: str = typer.Option("300,100", "--hidden", help="MLP hidden widths, e.g. 300,100."),
    channels: str = typer.Option(
        "32,64", "--channels", help="CNN channels per conv block, ResNet per stage, e.g. 32,64."
    ),
    res_blocks: int = typer.Option(1, "--res-blocks", help="ResNet residual blocks per stage: 1-3."),
    kernel_size: int = typer.Option(3, "--kernel-size", help="CNN kernel size: 3 or 5."),
    padding: str = typer.Option("same", "--padding", help="CNN padding: same or valid."),
    fc_width: int = typer.Option(128, "--fc-width", help="CNN hidden fully connected width (0: none)."),
    convs_per_block: int = typer.Option(1, "--convs-per-block", help="CNN convs before each 2x2 pool: 1-3."),
    head: str = typer.Option("flatten", "--head", help="CNN features: flatten, or gap (global avg pool)."),
    conv: str = typer.Option(
        "full", "--conv", help="CNN convs: full, or separable (depthwise k x k, then 1x1)."
    ),
    activation: str = typer.Option(
        "relu", "--activation", help="relu, leaky_relu, elu, gelu, silu, tanh or sigmoid."
    ),
    dropout: float = typer.Option(0.0, "--dropout", help="Dropout probability in [0, 1)."),
    batch_norm: bool = typer.Option(False, "--batch-norm/--no-batch-norm", help="Batch normalization."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd, adam, adamw or rmsprop."),
    lr: float = typer.Option(0.05, "--lr", help="Learning rate."),
    momentum: float = typer.Option(0.9, "--momentum", help="Momentum (sgd, rmsprop)."),
    nesterov: bool = typer.Option(False, "--nesterov", help="Nesterov momentum (sgd)."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", help="L2 weight decay."),
    schedule: str = typer.Option("none", "--schedule", help="none, cosine, onecycle or exponential."),
    gamma: float = typer.Option(0.7, "--gamma", help="Per-epoch lr decay of the exponential schedule."),
    batch_size: int = typer.Option(128, "--batch-size", help="Training batch size."),
    epochs: int = typer.Option(10, "--epochs", help="Training epochs."),
    augment: str = typer.Option(
        "none", "--augment", help="Training-batch augmentation on the device: none, shift or affine."
    ),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="Label smoothing of the loss."),
    val_size: int | None = options.VAL_SIZE,
    split_seed: int = options.SPLIT_SEED,
    device: str = options.DEVICE,
    precision: Precision = options.PRECISION,
    seed: int = options.TRAIN_SEED,
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic cuDNN/torch kernels."),
    experiment: str = typer.Option("train", "--experiment", help="MLflow experiment name."),
    tracking_uri: str | None = options.TRACKING_URI,
    quiet: bool = options.QUIET,
) -> None:
    """Train one configuration and log it as one MLflow run (metrics, params, best checkpoint)."""
    data_cfg = options.data_config(
        dataset=dataset,
        data=data,
        size=image_size,
        data_dir=data_dir,
        val_size=val_size,
        split_seed=split_seed,
    )
    model_cfg = ModelConfig(
        family=model,
        hidden=parse_int_list(hidden, option="--hidden"),
        channels=parse_int_list(channels, option="--channels"),
        kernel_size=kernel_size,
        padding=padding,
        fc_width=fc_width,
        convs_per_block=convs_per_block,
        head=head,
        conv=conv,
        res_blocks=res_blocks,
        activation=activation,
        dropout=dropout,
        batch_norm=batch_norm,
    )
    optim_cfg = OptimConfig(
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        schedule=schedule,
        gamma=gamma,
    )
    train_cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        device=device,
        deterministic=deterministic,
        augment=augment,
        label_smoothing=label_smoothing,
        precision=precision,
    )

    from hpo.search.train import train_one

    out = options.console()
    with train_progress(out, epochs=epochs) as on_epoch:
        summary = train_one(
            data_cfg=data_cfg,
            model_cfg=model_cfg,
            optim_cfg=optim_cfg,
            train_cfg=train_cfg,
            experiment=experiment,
            tracking_uri=tracking_uri,
            command=options.invocation(ctx).command,
            on_epoch=on_epoch,
        )
    res = summary.result
    if not quiet:
        out.print(render.epoch_table(on_epoch.history, best_epoch=res.best_epoch))  # type: ignore[attr-defined]
    out.print(
        render.train_result(
            outcome=res.outcome,
            best_epoch=res.best_epoch,
            best_val_accuracy=res.best_val_accuracy,
            run_id=summary.run_id,
            experiment=summary.experiment,
            parameters=summary.parameters,
            device=f"{summary.device}, {precision}",
            seconds=res.seconds,
        )
    )
    if res.outcome == "diverged":
        raise typer.Exit(1)
