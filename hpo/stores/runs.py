"""One tracked run, the lifecycle every command shares: start an MLflow run with provenance tags,
log params, fit with each epoch's metrics logged, upload the best epoch's checkpoint, end the
run with the status its outcome maps to. `hpo train` (`train_one`), every search trial
(`hpo.search.trial`) and the bookkeeping benchmark go through `TrackedRun`.

The outcome of a run decides both stores' records through one table, `link.OUTCOMES`."""

from __future__ import annotations

import platform
import socket
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import torch

import hpo
from hpo.config import ModelConfig, OptimConfig, TrainConfig
from hpo.core.checkpoint import write_checkpoint
from hpo.core.data import Normalization, TrainValData
from hpo.core.device import device_label
from hpo.core.engine import EpochMetrics, FitOutcome, FitResult, OnEpoch, fit_config
from hpo.core.models import RawPixelClassifier, build_model
from hpo.errors import TrackingError
from hpo.stores import link
from hpo.stores.mlflow import MLFLOW_VERSION, MlflowStore, scratch_dir

# How a fit ended -> the run's outcome: a fit stopped by its epoch hook was pruned.
_FIT_OUTCOMES: dict[FitOutcome, link.Outcome] = {
    "completed": "completed",
    "stopped": "pruned",
    "diverged": "diverged",
}


def outcome_of(result: FitResult) -> link.Outcome:
    """The run outcome of a fit ("stopped" by the epoch hook means pruned)."""
    return _FIT_OUTCOMES[result.outcome]


def provenance(
    *, device: torch.device, dataset: str, fingerprint: str, seed: int, command: str
) -> dict[str, str]:
    """Tags that say how a result was made, on every run. `command` is the command line as the
    user typed it, given by the CLI."""
    return {
        "hpo_version": hpo.__version__,
        "torch_version": torch.__version__,
        "mlflow_version": MLFLOW_VERSION,
        "python_version": platform.python_version(),
        "host": socket.gethostname(),
        link.DEVICE: device_label(device),
        "dataset": dataset,
        "split_fingerprint": fingerprint,
        "seed": str(seed),
        "command": command[:5000],
    }


class TrackedRun:
    """One MLflow run from start to end. As a context manager it ends the run on the way out if
    the caller did not: "interrupted" on Ctrl-C/SIGTERM, "failed" on any other exception."""

    def __init__(
        self,
        *,
        store: MlflowStore,
        experiment_id: str,
        name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> None:
        self.store = store
        self.run_id = store.start_run(
            experiment_id=experiment_id, name=name, tags=tags, parent_run_id=parent_run_id
        )
        self.ended: link.Outcome | None = None  # once ended

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.ended:
            self.end("interrupted" if kind is KeyboardInterrupt else "failed")

    def log_params(self, params: Mapping[str, object]) -> None:
        self.store.log_params(self.run_id, params)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int) -> None:
        """All metrics of one step (an epoch) in one store write."""
        self.store.log_metrics(self.run_id, metrics, step=step)

    def fit(
        self,
        *,
        model: torch.nn.Module,
        data: TrainValData,
        optim: OptimConfig,
        train: TrainConfig,
        on_epoch: OnEpoch | None = None,
    ) -> FitResult:
        """`engine.fit` with each epoch's six metrics logged in one batch (step = epoch)."""

        def hook(metrics: EpochMetrics) -> bool:
            self.log_metrics(metrics.metrics(), step=metrics.epoch)
            return on_epoch(metrics) if on_epoch is not None else False

        return fit_config(model=model, data=data, optim=optim, train=train, on_epoch=hook)

    def save_checkpoint(
        self,
        *,
        result: FitResult,
        model_config: ModelConfig,
        data: TrainValData,
        meta: dict[str, object],
        served: bool = True,
    ) -> None:
        """Upload the best epoch's weights + config under the run's `checkpoint/` artifacts (how hpo
        rebuilds it), and with `served` the same model as the run's MLflow model (how MLflow serves
        it; about 1 s, so a search logs it only for its best trial, when the call ends)."""
        if result.best_state is None:
            return
        with scratch_dir() as tmp:
            folder = Path(tmp) / link.CHECKPOINT_PATH
            write_checkpoint(
                folder,
                state_dict=result.best_state,
                model_config=model_config,
                normalization=data.normalization,
                meta={
                    **meta,
                    link.BEST_EPOCH: result.best_epoch,
                    "best_val_accuracy": result.best_val_accuracy,
                    "fingerprint": data.fingerprint,
                    "classes": list(data.spec.classes),
                },
            )
            self.store.log_dir(self.run_id, folder, artifact_path=link.CHECKPOINT_PATH)
        if not served:
            return
        model = build_model(model_config)
        model.load_state_dict(result.best_state)
        # Two validation images back on the raw 0..255 scale: the model's documented input.
        norm = data.normalization
        example = (data.val.x[:2].detach().cpu() * norm.std + norm.mean) * 255.0
        log_served_model(
            self.store,
            self.run_id,
            model=model,
            normalization=norm,
            example=example,
            classes=data.spec.classes,
        )

    def end(self, outcome: link.Outcome, *, tags: Mapping[str, object] | None = None) -> None:
        """Tag the outcome (and `tags`), then close the run with the status link.OUTCOMES gives. The run
        is closed even when the tags cannot be written (the error is raised after), so a failed
        tag write never leaves it RUNNING."""
        status = link.OUTCOMES[outcome][1]
        self.ended = outcome
        try:
            self.store.set_tags(self.run_id, {"outcome": outcome, **(tags or {})})
        finally:
            self.store.end_run(self.run_id, status=status)


def log_served_model(
    store: MlflowStore,
    run_id: str,
    *,
    model: torch.nn.Module,
    normalization: Normalization,
    example: torch.Tensor,
    classes: tuple[str, ...],
) -> str:
    """Log `model` as the run's MLflow model taking raw pixels (models.RawPixelClassifier) and tag
    the run with its URI; returns it. Its signature states the input's shape: (N, H, W) for grey
    images, (N, C, H, W) for colour ones; its metadata the scale and the class names. A model that
    cannot be logged leaves the run's checkpoint as the way to it: the reason is tagged and ""
    returned."""
    shape = tuple(example.shape[1:]) if example.ndim == 4 else (1, *example.shape[1:])
    in_shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    served = RawPixelClassifier(
        model.cpu().eval(), mean=normalization.mean, std=normalization.std, in_shape=in_shape
    )
    pixels = example.reshape(-1, *(in_shape[1:] if in_shape[0] == 1 else in_shape)).float().numpy()
    metadata = {
        "input_scale": "0-255, or 0-1 (decided per image by its brightest pixel)",
        "classes": list(classes),
    }
    try:
        uri = store.log_model(run_id, served, example=pixels, classes=len(classes), about=metadata)
    except TrackingError as exc:
        store.set_tags(run_id, {link.MODEL_LOG_ERROR: str(exc)[:500]})
        return ""
    store.set_tags(run_id, {link.MODEL_URI: uri})
    return uri
