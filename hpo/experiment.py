"""One tracked training: data + model + engine + MLflow run. `hpo train` calls `train_single`;
each search trial reuses `tracked_fit` and `log_checkpoint` with its own run."""

from __future__ import annotations

import platform
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import hpo
from hpo.checkpoint import write_checkpoint
from hpo.config import DataConfig, ModelConfig, OptimConfig, TrainConfig, flatten
from hpo.data import TrainValData, load_train_val
from hpo.models import build_model, count_parameters
from hpo.tracking import MLFLOW_VERSION, Tracker, scratch_dir
from hpo.train import EpochMetrics, FitResult, OnEpoch, fit, resolve_device, seed_everything

CHECKPOINT_PATH = "checkpoint"  # artifact folder of a run that holds model.pt + config.json
RUN_STATUS = {"completed": "FINISHED", "stopped": "KILLED", "diverged": "FAILED"}


@dataclass(frozen=True)
class TrainSummary:
    run_id: str
    experiment: str
    result: FitResult
    parameters: int
    device: str
    fingerprint: str


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def provenance(*, device: torch.device, dataset: str, fingerprint: str, seed: int) -> dict[str, str]:
    """Tags that say how a result was made, on every run."""
    return {
        "hpo_version": hpo.__version__,
        "torch_version": torch.__version__,
        "mlflow_version": MLFLOW_VERSION,
        "python_version": platform.python_version(),
        "host": socket.gethostname(),
        "device": device_label(device),
        "dataset": dataset,
        "split_fingerprint": fingerprint,
        "seed": str(seed),
        "command": " ".join(["hpo", *sys.argv[1:]])[:5000],
    }


def tracked_fit(
    *,
    tracker: Tracker,
    run_id: str,
    model: torch.nn.Module,
    data: TrainValData,
    optim: OptimConfig,
    train: TrainConfig,
    on_epoch: OnEpoch | None,
) -> FitResult:
    """`fit` with each epoch's six metrics logged in one batch (step = epoch)."""

    def hook(metrics: EpochMetrics) -> bool:
        tracker.log_metrics(run_id, metrics.metrics(), step=metrics.epoch)
        return on_epoch(metrics) if on_epoch is not None else False

    return fit(
        model=model,
        data=data,
        optim=optim,
        epochs=train.epochs,
        batch_size=train.batch_size,
        seed=train.seed,
        on_epoch=hook,
    )


def log_checkpoint(
    *,
    tracker: Tracker,
    run_id: str,
    result: FitResult,
    model_config: ModelConfig,
    data: TrainValData,
    meta: dict[str, object],
) -> None:
    """Upload the best epoch's weights + config under the run's `checkpoint/` artifacts."""
    if result.best_state is None:
        return
    with scratch_dir() as tmp:
        folder = Path(tmp) / CHECKPOINT_PATH
        write_checkpoint(
            folder,
            state_dict=result.best_state,
            model_config=model_config,
            normalization=data.normalization,
            meta={
                **meta,
                "best_epoch": result.best_epoch,
                "best_val_accuracy": result.best_val_accuracy,
                "fingerprint": data.fingerprint,
            },
        )
        tracker.log_dir(run_id, folder, artifact_path=CHECKPOINT_PATH)


def train_single(
    *,
    data_cfg: DataConfig,
    model_cfg: ModelConfig,
    optim_cfg: OptimConfig,
    train_cfg: TrainConfig,
    experiment: str,
    tracking_uri: str | None,
    on_epoch: Callable[[EpochMetrics], None] | None,
) -> TrainSummary:
    """Train one configuration as one MLflow run; the run is never left RUNNING."""
    device = resolve_device(train_cfg.device)
    seed_everything(seed=train_cfg.seed, deterministic=train_cfg.deterministic, device=device)
    tracker = Tracker(uri=tracking_uri)
    data = load_train_val(data_cfg, device=device)
    model = build_model(model_cfg).to(device)
    exp_id = tracker.experiment(experiment)
    tags = provenance(
        device=device, dataset=data_cfg.dataset, fingerprint=data.fingerprint, seed=train_cfg.seed
    )
    run_id = tracker.start_run(experiment_id=exp_id, name=f"{model_cfg.family}-{data_cfg.dataset}", tags=tags)
    params = flatten(data=data_cfg, model=model_cfg, optim=optim_cfg, train=train_cfg)
    params["parameters"] = str(count_parameters(model))
    status = "FAILED"
    try:
        tracker.log_params(run_id, params)

        def observe(metrics: EpochMetrics) -> bool:
            if on_epoch is not None:
                on_epoch(metrics)
            return False

        result = tracked_fit(
            tracker=tracker,
            run_id=run_id,
            model=model,
            data=data,
            optim=optim_cfg,
            train=train_cfg,
            on_epoch=observe,
        )
        log_checkpoint(
            tracker=tracker,
            run_id=run_id,
            result=result,
            model_config=model_cfg,
            data=data,
            meta={
                "dataset": data_cfg.dataset,
                "val_size": data_cfg.val_size,
                "split_seed": data_cfg.split_seed,
                **tags,
            },
        )
        tracker.set_tags(run_id, {"outcome": result.outcome, "best_epoch": result.best_epoch})
        status = RUN_STATUS[result.outcome]
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.end_run(run_id, status=status)
    return TrainSummary(
        run_id=run_id,
        experiment=experiment,
        result=result,
        parameters=int(params["parameters"]),
        device=device_label(device),
        fingerprint=data.fingerprint,
    )
