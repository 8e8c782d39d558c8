"""`hpo predict`: classify image files with the study's best model, after making each look like
the training data (`hpo.core.images`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hpo.core.data import normalize_images
from hpo.core.device import resolve_device
from hpo.core.engine import predict_logits
from hpo.core.images import contact_sheet, dataset_style, read_image
from hpo.stores import link
from hpo.stores.spec import read_spec
from hpo.stores.workspace import Workspace


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (label, probability), most likely first
    inverted: bool


@dataclass(frozen=True)
class Predictions:
    items: list[Prediction]  # one per file, in order
    trial: int  # the trial whose model predicted
    val_accuracy: float | None
    test_accuracy: float | None  # its lockbox result, None when it was never tested


def predict_files(
    *,
    ws: Workspace,
    paths: list[Path],
    study: str | None,
    top: int,
    device: str,
    show_input: Path | None = None,
) -> Predictions:
    """Classify image files with the best model of `study`; (label, probability) pairs per file,
    and which trial predicted, with its test accuracy if the lockbox ever scored it."""
    handle = ws.study(study)
    best = ws.best_trial(handle)
    loaded = ws.load_model(link.run_id(best))
    spec = read_spec(handle)
    shape, framing = loaded.model_config.in_shape, spec.input_framing if spec else "digit"
    prepared = [dataset_style(read_image(p), framing=framing, shape=shape) for p in paths]
    if show_input is not None:  # what the model sees, for the user to judge the preprocessing
        contact_sheet([a for a, _ in prepared], path=show_input)
    dev = resolve_device(device)
    images = torch.stack([torch.from_numpy(a.copy()) for a, _ in prepared])
    x = normalize_images(images, normalization=loaded.normalization, device=dev)
    probs = predict_logits(loaded.model.to(dev), x).softmax(1).cpu()
    names = spec.class_names if spec else tuple(map(str, range(loaded.model_config.classes)))
    k = max(1, min(top, len(names)))
    results = []
    for path, (_, inverted), p in zip(paths, prepared, probs, strict=True):
        values, idx = p.topk(k)
        pairs = [(names[int(i)], float(v)) for v, i in zip(values, idx, strict=True)]
        results.append(Prediction(path=str(path), top=pairs, inverted=inverted))
    tested = [
        r["accuracy"]
        for r in link.lockbox_records(handle)
        if r.get("trial") == best.number and "accuracy" in r
    ]
    return Predictions(
        items=results,
        trial=best.number,
        val_accuracy=best.value,
        test_accuracy=tested[-1] if tested else None,
    )
