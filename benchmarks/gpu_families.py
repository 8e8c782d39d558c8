"""The training core on a GPU, for each model family and for a user's own images: one model per
family trained on Fashion-MNIST (seconds per epoch after the first, validation accuracy), its
latency on the device, and a folder of 3-channel 32x32 PNGs read by `--data`'s reader and trained.
Needs only torch, numpy and Pillow (the core layer), so it runs where Optuna and MLflow are not.

    python benchmarks/gpu_families.py --data-dir ../shared/datasets --epochs 5"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hpo.config import DataConfig, ModelConfig, OptimConfig
from hpo.core.data import load_train_val
from hpo.core.device import resolve_device
from hpo.core.engine import fit
from hpo.core.footprint import footprint
from hpo.core.latency import latency
from hpo.core.models import build_model

FAMILIES = {
    "mlp 1024-1024": ModelConfig(family="mlp", hidden=(1024, 1024), dropout=0.2),
    "cnn 32-64 fc128": ModelConfig(family="cnn", channels=(32, 64), batch_norm=True, dropout=0.25),
    "resnet 32-64-128 x2": ModelConfig(
        family="resnet", channels=(32, 64, 128), res_blocks=2, batch_norm=True
    ),
}


def train_row(name: str, cfg: ModelConfig, *, data_cfg: DataConfig, device: torch.device, epochs: int) -> str:
    data = load_train_val(data_cfg, device=device)
    shaped = ModelConfig(**{**cfg.__dict__, "in_shape": data.spec.shape, "classes": len(data.spec.classes)})
    torch.manual_seed(0)
    model = build_model(shaped).to(device)
    seconds: list[float] = []

    def on_epoch(m: object) -> bool:
        seconds.append(m.epoch_seconds)  # type: ignore[attr-defined]
        return False

    optim = OptimConfig(optimizer="sgd", lr=0.05, momentum=0.9, schedule="cosine", weight_decay=5e-4)
    result = fit(
        model=model, data=data, optim=optim, epochs=epochs, batch_size=256, seed=0, on_epoch=on_epoch,
        augment="shift" if shaped.family != "mlp" else "none",
    )  # fmt: skip
    lat = latency(model, device=device, shape=shaped.in_shape)
    size = footprint(shaped)
    steady = float(np.median(seconds[1:])) if len(seconds) > 1 else seconds[0]
    return (
        f"| {name} | {data.spec.name} {'x'.join(map(str, data.spec.shape))} | {size.parameters:,} | "
        f"{steady:.2f} s | {100 * result.best_val_accuracy:.2f}% | "
        f"{lat.batch1_ms:.3f} / {lat.serving_ms:.3f} ms |"
    )


def colour_folder(root: Path, *, per_class: int = 400) -> Path:
    rng = np.random.default_rng(0)
    colours = ((255, 191, 0), (0, 0, 255), (0, 200, 0), (128, 128, 128), (230, 0, 0))
    for label, colour in enumerate(colours):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            a = rng.integers(0, 60, (32, 32, 3)).astype(np.int64)
            top, left = rng.integers(0, 16, 2)
            a[top : top + 16, left : left + 16] = np.array(colour) - rng.integers(0, 40, 3)
            Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}")
    print("| model | data | parameters | s/epoch | best val | latency b1 / b64 |\n|---|---|---|---|---|---|")
    fashion = DataConfig(dataset="fashion-mnist", data_dir=args.data_dir)
    for label, cfg in FAMILIES.items():
        print(train_row(label, cfg, data_cfg=fashion, device=device, epochs=args.epochs), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = colour_folder(Path(tmp) / "colours")
        own = DataConfig(dataset="colours", path=str(folder))
        for label, cfg in FAMILIES.items():
            print(train_row(label, cfg, data_cfg=own, device=device, epochs=args.epochs), flush=True)
        print(f"own-data folder: 2,000 PNGs written and searched in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
