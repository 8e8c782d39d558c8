"""`hpo reproduce`: retrain one trial of a study from what the stores recorded (its parameters,
its own seed, the epochs it ran, the study's split) as a new MLflow run linked to the trial's
run, and compare the two validation accuracies. On a CPU the curves are identical; on a GPU
they agree within noise unless `deterministic` is asked for."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from hpo.config import Precision, TrainConfig, as_params
from hpo.core.data import TrainValData, load_train_val
from hpo.core.device import check_precision, resolve_device, seed_everything
from hpo.core.models import build_model, count_parameters
from hpo.errors import StudyError
from hpo.search.space import TrialConfig, config_from_params
from hpo.stores import link
from hpo.stores.optuna import StudyHandle, TrialRow
from hpo.stores.runs import TrackedRun, outcome_of, provenance
from hpo.stores.spec import StudySpec, read_spec
from hpo.stores.workspace import Workspace


@dataclass(frozen=True)
class Reproduction:
    study: str
    trial: int
    original_run_id: str
    run_id: str  # the new run
    epochs: int
    original: float  # the trial's best validation accuracy over those epochs
    reproduced: float


def _recorded(handle: StudyHandle, number: int) -> tuple[TrialRow, TrialConfig, int]:
    """The trial, the configuration it trained and its seed, or a clear error."""
    rows = {r.number: r for r in handle.rows()}
    if number not in rows:
        raise StudyError(f"study {handle.name!r} has no trial {number} (trials 0 to {len(rows) - 1})")
    row = rows[number]
    config = config_from_params(row.params)
    if row.state not in (link.COMPLETE, link.PRUNED) or config is None or not row.curve:
        raise StudyError(
            f"trial {number} is {row.state} and trained no epoch: only finished trials can be reproduced"
        )
    if link.SEED not in row.attrs:
        raise StudyError(
            f"trial {number} records no seed (it predates `hpo reproduce`): it cannot be retrained exactly"
        )
    return row, config, int(row.attrs[link.SEED])


def _study_data(
    handle: StudyHandle, *, data_dir: str, device: torch.device
) -> tuple[StudySpec, TrainValData]:
    """The study's spec and its split loaded from `data_dir`, refused if the split differs."""
    spec = read_spec(handle)
    if spec is None:
        raise StudyError(f"study {handle.name!r} records no spec: it was not made by `hpo search`")
    data = load_train_val(spec.data_config(data_dir=data_dir), device=device)
    spec.check_fingerprint(data.fingerprint, data_dir=data_dir, study=handle.name)
    return spec, data


def _run_tags(*, handle: StudyHandle, row: TrialRow, tags: dict[str, str]) -> dict[str, str]:
    """Provenance `tags` plus the links from the new run to the study and the trial's run."""
    return tags | {
        link.ROLE: link.ROLE_REPRODUCE,
        link.REPRODUCES: link.run_id(row),
        link.STUDY: handle.name,
        link.TRIAL_NUMBER: str(row.number),
    }


def reproduce_trial(
    *,
    ws: Workspace,
    study: str | None,
    number: int,
    data_dir: str,
    device: str,
    deterministic: bool,
    command: str,
) -> Reproduction:
    """Retrain trial `number` exactly as the search did; the new run sits in the study's experiment."""
    handle = ws.study(study)
    row, config, seed = _recorded(handle, number)
    dev = resolve_device(device)
    precision: Precision = "bf16" if row.attrs.get(link.PRECISION) == "bf16" else "fp32"  # as it trained
    fix = f"trial {number} trained in bf16, so reproduce it with --device cpu or cuda"
    check_precision(dev, precision, fix=fix)  # before the reproduction's run is created
    seed_everything(seed=seed, deterministic=deterministic, device=dev)
    spec, data = _study_data(handle, data_dir=data_dir, device=dev)
    train = TrainConfig(
        epochs=link.schedule_epochs(row, study_epochs=spec.epochs),  # a final training's own
        batch_size=config.batch_size,
        seed=seed,
        device=device,
        deterministic=deterministic,
        augment=config.augment,
        label_smoothing=config.label_smoothing,
        precision=precision,
    )
    ran = max(row.curve)  # a pruned trial stopped here; its schedule still spanned train.epochs
    made = provenance(
        device=dev, dataset=spec.dataset, fingerprint=data.fingerprint, seed=seed, command=command
    )
    store = ws.mlflow
    experiment = store.experiment(handle.name)
    tags = _run_tags(handle=handle, row=row, tags=made)
    with TrackedRun(store=store, experiment_id=experiment, name=f"reproduce-{number:04d}", tags=tags) as run:
        shaped = dataclasses.replace(config.model, in_shape=data.spec.shape, classes=len(data.spec.classes))
        model = build_model(shaped).to(dev)  # after seeding: the same weights as the trial
        params = as_params(spec.data_config(data_dir=data_dir), shaped, config.optim, train)
        run.log_params({**params, link.PARAMETERS: count_parameters(model)})
        result = run.fit(
            model=model, data=data, optim=config.optim, train=train, on_epoch=lambda m: m.epoch >= ran
        )
        run.end("completed" if outcome_of(result) == "pruned" else outcome_of(result))
    return Reproduction(
        study=handle.name,
        trial=number,
        original_run_id=link.run_id(row),
        run_id=run.run_id,
        epochs=ran,
        original=max(row.curve.values()),
        reproduced=result.best_val_accuracy,
    )
