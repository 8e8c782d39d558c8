"""The test-set lockbox: the one place that evaluates on the official test split.

The official test split decides nothing: it is evaluated only here, for the best trial, and the
study remembers every evaluation (time, trial, result: `results.test_looks`). A second
evaluation needs `force`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from hpo.config import DataConfig
from hpo.core.checkpoint import LoadedModel
from hpo.core.data import Split, TrainValData, load_test, load_test_images, load_train_val
from hpo.core.device import resolve_device
from hpo.core.engine import predict_logits
from hpo.errors import CheckpointError, ConfigError, StudyError
from hpo.results.ensemble import Members, load_members, mean_probabilities, scores, top_trials
from hpo.results.test_looks import claimed_look, refuse_second_use, refuse_unfinished, split_looks
from hpo.stores import link
from hpo.stores.optuna import StudyHandle
from hpo.stores.spec import read_spec
from hpo.stores.workspace import Workspace


@dataclass(frozen=True)
class TestReport:
    study: str
    trial: int
    run_id: str
    val_accuracy: float
    accuracy: float
    nll_mean: float
    nll_sum: float  # summed over the test set, as seed 004 prints
    n: int
    classes: tuple[str, ...]
    per_class: list[tuple[str, float, int]]  # (class, accuracy, count), hardest first
    confusion: list[list[int]]  # [true][predicted]
    evaluations: int  # how many times this study's test set has now been used
    artifacts: list[str] = field(default_factory=list)
    ensemble: EnsembleReport | None = None


@dataclass(frozen=True)
class EnsembleReport:
    members: list[int]  # trial numbers, best first
    val_accuracy: float  # computed and recorded before the test look
    accuracy: float
    nll_mean: float


def _check_split(
    *, handle: StudyHandle, loaded: list[LoadedModel], data_dir: str, device: torch.device
) -> tuple[DataConfig, TrainValData]:
    """The checkpoints, the study and the data on disk must agree on the split fingerprint."""
    spec = read_spec(handle)
    if spec is None:
        raise StudyError(f"study {handle.name!r} records no spec: it was not made by `hpo search`")
    data_cfg = spec.data_config(data_dir=data_dir)
    for model in loaded:
        if model.meta.get("fingerprint") != spec.fingerprint:
            raise CheckpointError(
                f"the checkpoint's split fingerprint {model.meta.get('fingerprint')} is not the study's "
                f"{spec.fingerprint}: it was not trained on this study's split"
            )
    data = load_train_val(data_cfg, device=device)
    spec.check_fingerprint(data.fingerprint, data_dir=data_dir, study=handle.name)
    return data_cfg, data


def _metrics(logits: torch.Tensor, y: torch.Tensor, classes: tuple[str, ...]) -> dict[str, Any]:
    nll_sum = float(F.cross_entropy(logits, y, reduction="sum"))
    pred = logits.argmax(1)
    k = len(classes)
    confusion = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k).cpu()
    counts = confusion.sum(1)
    per_class = [
        (classes[i], float(confusion[i, i]) / max(1, int(counts[i])), int(counts[i])) for i in range(k)
    ]
    return {
        "accuracy": float((pred == y).float().mean()),
        "nll_mean": nll_sum / len(y),
        "nll_sum": nll_sum,
        "per_class": sorted(per_class, key=lambda r: r[1]),
        "confusion": confusion.tolist(),
        "wrong": (pred != y).nonzero().flatten().cpu(),
        "pred": pred.cpu(),
    }


def _log_results(
    *,
    ws: Workspace,
    handle: StudyHandle,
    run_id: str,
    m: dict[str, Any],
    uses: int,
    pngs: list[Path],
    ensemble: dict[str, Any],
) -> None:
    metrics = {"test_accuracy": m["accuracy"], "test_nll": m["nll_mean"], "test_nll_sum": m["nll_sum"]}
    parent = link.parent_run_id(handle)
    for target in [run_id, parent] if parent else [run_id]:
        ws.mlflow.log_metrics(target, metrics, step=uses)
        ws.mlflow.set_tags(target, {link.TEST_EVALUATIONS: uses})
    if parent and "members" in ensemble:
        keys = ("ensemble_val_accuracy", "ensemble_accuracy", "ensemble_nll")
        names = ("val_ensemble_accuracy", "test_ensemble_accuracy", "test_ensemble_nll")
        ws.mlflow.log_metrics(parent, {n: ensemble[k] for n, k in zip(names, keys, strict=True)}, step=uses)
        ws.mlflow.set_tags(parent, {"test_ensemble_members": ",".join(map(str, ensemble["members"]))})
    for png in pngs:
        ws.mlflow.log_file(run_id, png, artifact_path="test")


def _claim_fields(members: Members, data: TrainValData) -> dict[str, Any]:
    """What the lockbox records about an ensemble before the test look: its members and its
    validation accuracy."""
    if len(members.trials) == 1:
        return {}
    val_accuracy, _ = scores(mean_probabilities(members.models, data.val.x), data.val.y)
    return {"members": members.trials, "ensemble_val_accuracy": val_accuracy}


def _score(
    members: Members,
    *,
    data_cfg: DataConfig,
    classes: tuple[str, ...],
    device: torch.device,
    ensemble: bool,
    result: dict[str, Any],
) -> tuple[Split, dict[str, Any]]:
    """The look itself: the best member's test metrics (and the members' mean with `ensemble`),
    written into `result`, the lockbox record, before anything is shown; per class and confusion
    too, for `hpo report --html`."""
    test = load_test(data_cfg, device=device, normalization=members.models[0].normalization)
    m = _metrics(predict_logits(members.models[0].model.to(device), test.x), test.y, classes)
    result.update(
        accuracy=m["accuracy"], nll=m["nll_mean"], per_class=m["per_class"], confusion=m["confusion"]
    )
    if ensemble:
        accuracy, nll = scores(mean_probabilities(members.models, test.x), test.y)
        result.update(ensemble_accuracy=accuracy, ensemble_nll=nll)
    return test, m


def evaluate_test(
    *,
    ws: Workspace,
    study: str | None,
    data_dir: str,
    device: str,
    force: bool,
    out_dir: Path,
    ensemble: int = 1,
    pick: int | None = None,
) -> TestReport:
    """Evaluate the best trial (or the complete trial `pick`, chosen on validation; with
    `ensemble` K > 1 also the mean of the top-K trials) once on the official test split, and
    record that it was done."""
    handle = ws.study(study)
    if ensemble > 1 and (handle.multi or pick is not None):
        raise ConfigError(
            "--ensemble averages the most accurate trials, whatever their size: on a multi-objective "
            "study, or with --pick/--max-params, take the look for one trial (without --ensemble)"
        )
    rows = top_trials(handle, ensemble) if ensemble > 1 else [ws.best_trial(handle, pick=pick)]
    best = rows[0]
    if not force:  # fail fast, before loading anything; the looks are checked again atomically
        refuse_unfinished(handle)
        looks = split_looks(ws, handle)
        if looks:
            refuse_second_use(handle, looks)
    members = load_members(ws, rows)
    dev = resolve_device(device)
    data_cfg, data = _check_split(handle=handle, loaded=members.models, data_dir=data_dir, device=dev)
    fields = _claim_fields(members, data)
    run_id = members.run_ids[0]
    ws.mlflow.check_artifacts_here(run_id)  # before the look is claimed: a copied project refuses whole
    look = claimed_look(ws=ws, handle=handle, force=force, trial=best.number, run_id=run_id, fields=fields)
    with look as (earlier, result):
        classes = data.spec.classes
        test, m = _score(
            members, data_cfg=data_cfg, classes=classes, device=dev, ensemble=bool(fields), result=result
        )
    uses = len(earlier) + 1
    from hpo.results.figures import test_pngs  # matplotlib: only once the look is recorded

    pngs = test_pngs(
        images=load_test_images(data_cfg), labels=test.y.cpu(), pred=m["pred"], wrong=m["wrong"],
        confusion=m["confusion"], classes=classes, out_dir=out_dir,
    )  # fmt: skip
    _log_results(ws=ws, handle=handle, run_id=run_id, m=m, uses=uses, pngs=pngs, ensemble=result | fields)
    report = EnsembleReport(
        members=members.trials,
        val_accuracy=fields.get("ensemble_val_accuracy", 0.0),
        accuracy=result.get("ensemble_accuracy", 0.0),
        nll_mean=result.get("ensemble_nll", 0.0),
    )
    return TestReport(
        study=handle.name,
        trial=best.number,
        run_id=run_id,
        val_accuracy=best.value or 0.0,
        n=len(test),
        classes=classes,
        evaluations=uses,
        artifacts=[str(p) for p in pngs],
        ensemble=report if fields else None,
        **{k: m[k] for k in ("accuracy", "nll_mean", "nll_sum", "per_class", "confusion")},
    )
