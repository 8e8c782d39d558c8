"""`hpo train`: one configuration trained and tracked as one MLflow run, outside any study. The
run is never left RUNNING: `TrackedRun` ends it on any way out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from hpo.config import DataConfig, ModelConfig, OptimConfig, TrainConfig, as_params
from hpo.core.data import load_train_val
from hpo.core.device import check_precision, device_label, resolve_device, seed_everything
from hpo.core.engine import EpochMetrics, FitResult
from hpo.core.models import build_model, count_parameters
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from hpo.stores.runs import TrackedRun, outcome_of, provenance


@dataclass(frozen=True)
class TrainSummary:
    run_id: str
    experiment: str
    result: FitResult
    parameters: int
    device: str
    fingerprint: str


def train_one(
    *,
    data_cfg: DataConfig,
    model_cfg: ModelConfig,
    optim_cfg: OptimConfig,
    train_cfg: TrainConfig,
    experiment: str,
    tracking_uri: str | None,
    command: str,
    on_epoch: Callable[[EpochMetrics], None] | None,
) -> TrainSummary:
    """`hpo train`: one configuration as one MLflow run; the run is never left RUNNING."""
    device = resolve_device(train_cfg.device)
    check_precision(device, train_cfg.precision)  # here, before the run is created
    seed_everything(seed=train_cfg.seed, deterministic=train_cfg.deterministic, device=device)
    store = MlflowStore(uri=tracking_uri)
    data = load_train_val(data_cfg, device=device)
    # The flags say what the model is; the data, what it takes in and tells apart.
    model_cfg = dataclasses.replace(model_cfg, in_shape=data.spec.shape, classes=len(data.spec.classes))
    model = build_model(model_cfg).to(device)
    tags = provenance(
        device=device,
        dataset=data_cfg.dataset,
        fingerprint=data.fingerprint,
        seed=train_cfg.seed,
        command=command,
    )
    parameters = count_parameters(model)
    name = f"{model_cfg.family}-{data_cfg.dataset}"
    with TrackedRun(store=store, experiment_id=store.experiment(experiment), name=name, tags=tags) as run:
        run.log_params({**as_params(data_cfg, model_cfg, optim_cfg, train_cfg), link.PARAMETERS: parameters})

        def observe(metrics: EpochMetrics) -> bool:
            if on_epoch is not None:
                on_epoch(metrics)
            return False

        result = run.fit(model=model, data=data, optim=optim_cfg, train=train_cfg, on_epoch=observe)
        meta = {"dataset": data_cfg.dataset, "val_size": len(data.val), "split_seed": data_cfg.split_seed}
        run.save_checkpoint(result=result, model_config=model_cfg, data=data, meta={**meta, **tags})
        run.end(outcome_of(result), tags={link.BEST_EPOCH: result.best_epoch})
    return TrainSummary(
        run_id=run.run_id,
        experiment=experiment,
        result=result,
        parameters=parameters,
        device=device_label(device),
        fingerprint=data.fingerprint,
    )
