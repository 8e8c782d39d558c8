"""`hpo predict`: classify image files with the study's best model.

Images are made to look like the training data: grayscale; inverted when the background is
light (MNIST digits are white on black); for digits, cropped to the ink, scaled to fit 20x20 and
centred by centre of mass in a 28x28 frame, as MNIST was made; for clothes, fitted to 28x28."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from hpo import link
from hpo.data import class_names, normalize_images
from hpo.engine import predict_logits, resolve_device
from hpo.errors import DataError
from hpo.workspace import Workspace


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (label, probability), most likely first
    inverted: bool


def read_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("L")
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path} is not an image this tool can read (PNG or JPEG): {exc}") from None


def _light_background(img: Image.Image) -> bool:
    a = np.asarray(img, dtype=np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return float(np.median(border)) > 127


def _center_digit(img: Image.Image) -> Image.Image:
    """MNIST's recipe: ink bounding box -> fit in 20x20 -> centre of mass at the 28x28 centre."""
    box = img.point(lambda v: 255 if v > 40 else 0).getbbox()
    if box is None:  # blank image
        return img.resize((28, 28))
    digit = img.crop(box)
    scale = 20 / max(digit.size)
    digit = digit.resize(
        (max(1, round(digit.width * scale)), max(1, round(digit.height * scale))), Image.Resampling.LANCZOS
    )
    canvas = Image.new("L", (28, 28))
    a = np.asarray(digit, dtype=np.float64)
    total = a.sum() or 1.0
    cy, cx = (np.indices(a.shape) * a).reshape(2, -1).sum(1) / total
    canvas.paste(digit, (round(14 - cx), round(14 - cy)))
    return canvas


def preprocess(img: Image.Image, *, dataset: str) -> tuple[torch.Tensor, bool]:
    """PIL grayscale image -> uint8 (28, 28) tensor like the dataset's, and whether it was inverted."""
    inverted = _light_background(img)
    if inverted:
        img = ImageOps.invert(img)
    img = _center_digit(img) if dataset == "mnist" else ImageOps.pad(img, (28, 28), color=0)
    return torch.from_numpy(np.array(img, dtype=np.uint8)), inverted


def predict_files(
    *, ws: Workspace, paths: list[Path], study: str | None, top: int, device: str
) -> list[Prediction]:
    """Classify image files with the best model of `study`; (label, probability) pairs per file."""
    handle = ws.study(study)
    loaded = ws.load_model(link.run_id(ws.best_trial(handle)))
    spec = link.read_spec(handle)
    dataset = spec.dataset if spec else "mnist"
    prepared = [preprocess(read_image(p), dataset=dataset) for p in paths]
    dev = resolve_device(device)
    x = normalize_images(
        torch.stack([t for t, _ in prepared]), normalization=loaded.normalization, device=dev
    )
    probs = predict_logits(loaded.model.to(dev), x).softmax(1).cpu()
    names = class_names(dataset)
    k = max(1, min(top, len(names)))
    results = []
    for path, (_, inverted), p in zip(paths, prepared, probs, strict=True):
        values, idx = p.topk(k)
        pairs = [(names[int(i)], float(v)) for v, i in zip(values, idx, strict=True)]
        results.append(Prediction(path=str(path), top=pairs, inverted=inverted))
    return results
