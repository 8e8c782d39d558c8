"""The best trial, its checkpoint, and the test-set lockbox.

The official test split decides nothing: it is evaluated only here, for the best trial, and the
study remembers every evaluation (time, trial, result). A second evaluation needs `force`."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from hpo.checkpoint import LoadedModel, read_checkpoint
from hpo.config import DataConfig
from hpo.data import class_names, load_test, load_test_images, load_train_val
from hpo.errors import CheckpointError, LockboxError, StudyError, TrackingError
from hpo.experiment import CHECKPOINT_PATH
from hpo.study import StudyHandle, TrialRow, open_storage, pick_study
from hpo.tracking import Tracker
from hpo.train import predict_logits, resolve_device

EVALS_ATTR = "test_evaluations"


@dataclass(frozen=True)
class BestInfo:
    study: str
    trial: TrialRow
    run_id: str
    checkpoint_uri: str
    spec: dict[str, Any]
    evaluations: list[dict[str, Any]]


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


def best_of(handle: StudyHandle) -> TrialRow:
    best = handle.best()
    if best is None:
        raise StudyError(
            f"study {handle.name!r} has no complete trial yet: run `hpo search` until one completes"
        )
    return best


def best_info(*, storage: str, study: str | None, tracking_uri: str | None) -> BestInfo:
    handle = pick_study(open_storage(storage), study)
    best = best_of(handle)
    run_id = str(best.attrs.get("mlflow_run_id", ""))
    uri = ""
    if run_id:
        record = Tracker(uri=tracking_uri).run(run_id)
        uri = f"{record.artifact_uri}/{CHECKPOINT_PATH}"
    return BestInfo(
        study=handle.name,
        trial=best,
        run_id=run_id,
        checkpoint_uri=uri,
        spec=handle.spec,
        evaluations=list(handle.attr(EVALS_ATTR, [])),
    )


def load_best_model(*, tracker: Tracker, run_id: str) -> LoadedModel:
    """Download the run's checkpoint and rebuild the model from it alone."""
    if not run_id:
        raise CheckpointError("the best trial has no MLflow run id, so no checkpoint can be found")
    with tempfile.TemporaryDirectory(prefix="hpo-ckpt-") as tmp:
        try:
            folder = tracker.download(run_id, CHECKPOINT_PATH, dst=Path(tmp))
        except TrackingError as exc:
            raise CheckpointError(
                f"the checkpoint of run {run_id} cannot be read ({exc}); was mlruns/artifacts deleted?"
            ) from exc
        return read_checkpoint(folder)


def _refuse_second_use(handle: StudyHandle, evaluations: list[dict[str, Any]]) -> None:
    last = evaluations[-1]
    raise LockboxError(
        f"the test set of study {handle.name!r} was already used on {last['time']} (trial {last['trial']}: "
        f"test accuracy {100 * last['accuracy']:.2f}%); evaluating again would let the test set "
        f"choose the model: pass --force only if you accept that"
    )


def _check_split(
    *, handle: StudyHandle, loaded: LoadedModel, data_dir: str, device: torch.device
) -> DataConfig:
    """The checkpoint, the study and the data on disk must agree on the split fingerprint."""
    spec = handle.spec
    data_cfg = DataConfig(
        dataset=spec["dataset"], data_dir=data_dir, val_size=spec["val_size"], split_seed=spec["split_seed"]
    )
    expected = spec["fingerprint"]
    if loaded.meta.get("fingerprint") != expected:
        raise CheckpointError(
            f"the checkpoint's split fingerprint {loaded.meta.get('fingerprint')} is not the study's "
            f"{expected}: it was not trained on this study's split"
        )
    found = load_train_val(data_cfg, device=device).fingerprint
    if found != expected:
        raise StudyError(
            f"the data in {data_dir} gives split fingerprint {found}, but study {handle.name!r} was made "
            f"with {expected}: point --data-dir at the dataset the study was trained on"
        )
    return data_cfg


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
    *, tracker: Tracker, handle: StudyHandle, run_id: str, m: dict[str, Any], uses: int, pngs: list[Path]
) -> None:
    metrics = {"test_accuracy": m["accuracy"], "test_nll": m["nll_mean"], "test_nll_sum": m["nll_sum"]}
    parent = handle.attr("mlflow_parent_run_id")
    for target in [run_id, parent] if parent else [run_id]:
        tracker.log_metrics(target, metrics, step=uses)
        tracker.set_tags(target, {"test_evaluations": uses})
    for png in pngs:
        tracker.log_file(run_id, png, artifact_path="test")


def evaluate_test(
    *,
    storage: str,
    study: str | None,
    tracking_uri: str | None,
    data_dir: str,
    device: str,
    force: bool,
    out_dir: Path,
) -> TestReport:
    """Evaluate the best trial once on the official test split and record that it was done."""
    from hpo import plots

    handle = pick_study(open_storage(storage), study)
    best = best_of(handle)
    evaluations = list(handle.attr(EVALS_ATTR, []))
    if evaluations and not force:
        _refuse_second_use(handle, evaluations)
    tracker = Tracker(uri=tracking_uri)
    run_id = str(best.attrs.get("mlflow_run_id", ""))
    loaded = load_best_model(tracker=tracker, run_id=run_id)
    dev = resolve_device(device)
    data_cfg = _check_split(handle=handle, loaded=loaded, data_dir=data_dir, device=dev)
    test = load_test(data_cfg, device=dev, normalization=loaded.normalization)
    classes = class_names(data_cfg.dataset)
    m = _metrics(predict_logits(loaded.model.to(dev), test.x), test.y, classes)
    record = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "trial": best.number,
        "run_id": run_id,
        "accuracy": m["accuracy"],
        "nll": m["nll_mean"],
        "forced": bool(evaluations),
    }
    handle.set_attr(EVALS_ATTR, [*evaluations, record])  # the lockbox: recorded before anything is shown
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = [
        plots.confusion_png(m["confusion"], classes=classes, path=out_dir / "confusion_matrix.png"),
        plots.misclassified_png(
            load_test_images(data_cfg),
            labels=test.y.cpu(),
            pred=m["pred"],
            wrong=m["wrong"],
            classes=classes,
            path=out_dir / "misclassified.png",
        ),
    ]
    _log_results(tracker=tracker, handle=handle, run_id=run_id, m=m, uses=len(evaluations) + 1, pngs=pngs)
    return TestReport(
        study=handle.name,
        trial=best.number,
        run_id=run_id,
        val_accuracy=best.value or 0.0,
        accuracy=m["accuracy"],
        nll_mean=m["nll_mean"],
        nll_sum=m["nll_sum"],
        n=len(test),
        classes=classes,
        per_class=m["per_class"],
        confusion=m["confusion"],
        evaluations=len(evaluations) + 1,
        artifacts=[str(p) for p in pngs],
    )
