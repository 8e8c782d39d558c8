"""Tiny synthetic datasets in torchvision's IDX layout, so tests go through the real loading code:
class c is a bright 7x7 square at one of 10 grid positions on noise, learnable in one epoch."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

TRAIN_IMAGES = 1200  # synthetic training split size (the validation split is carved from it)
TEST_IMAGES = 300
VAL_SIZE = 200


def write_idx_images(path: Path, images: np.ndarray) -> None:
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">IIII", 0x0803, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    path.write_bytes(struct.pack(">II", 0x0801, len(labels)) + labels.astype(np.uint8).tobytes())


def synthetic_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class c = a bright 7x7 square at one of 10 grid positions, on noise: learnable in 1 epoch."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, col = 2 + (c // 5) * 12, 1 + (c % 5) * 5
        images[i, r : r + 7, col : col + 5] = rng.integers(180, 256)
    return images


def make_dataset(root: Path, folder: str = "MNIST", seed: int = 0) -> Path:
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", TRAIN_IMAGES), ("t10k", TEST_IMAGES)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", synthetic_images(labels, rng))
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root
