"""Datasets as tensors on the training device (read by `hpo.core.datasets`), so the training loop
never touches a DataLoader, PIL or the disk.

Images are (N, C, H, W) float32, normalized with the mean/std of the training part only;
labels are (N,) int64. The official test split is reachable only through `load_test`, which the
test-evaluation path calls explicitly."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from hpo.config import DataConfig
from hpo.core.datasets import Dataset, DatasetSpec, open_registered
from hpo.errors import DataError


@dataclass(frozen=True)
class Split:
    """One split held on the device: x (N, C, H, W) float32 normalized, y (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Normalization:
    """Pixel statistics of the training part, on the 0..1 scale (one for all channels: a colour's
    channels keep their ratios)."""

    mean: float
    std: float


@dataclass(frozen=True)
class TrainValData:
    train: Split
    val: Split
    normalization: Normalization
    fingerprint: str  # identifies dataset content + validation indices
    spec: DatasetSpec  # its shape and class names


def open_dataset(cfg: DataConfig) -> Dataset:
    """The dataset `cfg` names: a user's own (`cfg.path`) or a registered one."""
    if cfg.path is None:
        return open_registered(cfg)
    from hpo.core.user_data import open_user_data  # PIL and the folder walk: only for a user's data

    return open_user_data(cfg)


def split_indices(*, n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded, disjoint (train, val) index tensors over range(n); the same seed gives the same
    split on every machine because the permutation is drawn on the CPU generator."""
    if val_size >= n:
        raise DataError(
            f"--val-size {val_size} leaves no training images out of {n}: use a smaller --val-size"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def fingerprint(*, dataset: str, images: torch.Tensor, labels: torch.Tensor, val_idx: torch.Tensor) -> str:
    h = hashlib.sha256(dataset.encode())
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    h.update(val_idx.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _to_split(images: torch.Tensor, labels: torch.Tensor, norm: Normalization, device: torch.device) -> Split:
    # Move uint8 (N, C, H, W) first (4x fewer bytes over the bus), then normalize on the device.
    x = images.to(device).float().div_(255.0).sub_(norm.mean).div_(norm.std)
    return Split(x=x.contiguous(), y=labels.to(device))


def load_train_val(cfg: DataConfig, *, device: torch.device, download: bool = True) -> TrainValData:
    """Training part and validation part of the training split, on `device`."""
    dataset = open_dataset(cfg)
    images, labels = dataset.read(True, download)
    n = images.shape[0]
    train_idx, val_idx = split_indices(n=n, val_size=cfg.val_images(n), seed=cfg.split_seed)
    train_pixels = images[train_idx].float().div_(255.0)
    norm = Normalization(mean=float(train_pixels.mean()), std=float(train_pixels.std()))
    return TrainValData(
        train=_to_split(images[train_idx], labels[train_idx], norm, device),
        val=_to_split(images[val_idx], labels[val_idx], norm, device),
        normalization=norm,
        fingerprint=fingerprint(dataset=cfg.dataset, images=images, labels=labels, val_idx=val_idx),
        spec=dataset.spec,
    )


def load_test(cfg: DataConfig, *, device: torch.device, normalization: Normalization) -> Split:
    """The test split. Only the test-evaluation path (the lockbox) calls this."""
    images, labels = open_dataset(cfg).read(False, True)
    return _to_split(images, labels, normalization, device)


def load_test_images(cfg: DataConfig) -> torch.Tensor:
    """Raw uint8 test images (N, C, H, W) for drawing misclassified examples."""
    return open_dataset(cfg).read(False, False)[0]


def normalize_images(
    images: torch.Tensor, *, normalization: Normalization, device: torch.device
) -> torch.Tensor:
    """uint8 or 0..255 float images (N, C, H, W) -> normalized (N, C, H, W) on `device`."""
    x = images.to(device).float().div(255.0)
    return x.sub_(normalization.mean).div_(normalization.std)
