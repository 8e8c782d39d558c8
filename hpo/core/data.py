"""The only code that reads datasets. Splits are returned as tensors already on the training
device, so the training loop never touches a DataLoader, PIL or the disk.

Images are (N, 1, 28, 28) float32, normalized with the mean/std of the training part only;
labels are (N,) int64. The official test split is reachable only through `load_test`, which the
test-evaluation path calls explicitly."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from hpo.config import IMAGE_SIZE, NUM_CLASSES, DataConfig
from hpo.errors import DataError, first_line

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))
_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class Split:
    """One split held on the device: x (N, 1, 28, 28) float32 normalized, y (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Normalization:
    """Pixel statistics of the training part, on the 0..1 scale."""

    mean: float
    std: float


@dataclass(frozen=True)
class TrainValData:
    train: Split
    val: Split
    normalization: Normalization
    fingerprint: str  # identifies dataset content + validation indices


def class_names(dataset: str) -> tuple[str, ...]:
    return FASHION_CLASSES if dataset == "fashion-mnist" else DIGIT_CLASSES


def raw_folder(cfg: DataConfig) -> Path:
    return Path(cfg.data_dir) / _FOLDERS[cfg.dataset] / "raw"


def _missing_message(cfg: DataConfig, *, train: bool, reason: str) -> str:
    files = ", ".join(_FILES[train])
    return (
        f"{cfg.dataset} not found ({reason}): expected {files} under {raw_folder(cfg)}; "
        f"copy the IDX files there or point --data-dir/HPO_DATA_DIR at a folder that has them"
    )


def _download(cfg: DataConfig, *, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Files that are not on disk, fetched by torchvision (imported here: its ~2 s of import are
    paid only when something must be downloaded)."""
    if not download:
        raise DataError(_missing_message(cfg, train=train, reason="download disabled"))
    from torchvision.datasets import MNIST, FashionMNIST

    cls = MNIST if cfg.dataset == "mnist" else FashionMNIST
    folder = raw_folder(cfg)
    new = [p for p in (folder, *folder.parents) if not p.exists()]  # what a download would create
    try:
        # torchvision prints download progress to stdout; only the CLI may talk to the user.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ds = cls(root=cfg.data_dir, train=train, download=True)
    except Exception as exc:  # offline (RuntimeError, OSError, URLError...) or a bad archive
        for path in new:  # deepest first: a mistyped --data-dir leaves no empty folders behind
            with contextlib.suppress(OSError):
                path.rmdir()
        reason = f"not on disk, and the download failed: {first_line(exc).rstrip(': ')}"
        raise DataError(_missing_message(cfg, train=train, reason=reason)) from exc
    return ds.data, ds.targets


def _idx(path: Path, *, dims: int) -> torch.Tensor:
    """An IDX file of unsigned bytes as a uint8 tensor: the header is a big-endian magic
    0x0800 + dims, then one uint32 size per dimension; the bytes follow."""
    raw = path.read_bytes()
    head = 4 * (1 + dims)
    if len(raw) < head:
        raise ValueError(f"{path.name} is {len(raw)} bytes, shorter than its header")
    magic, *shape = struct.unpack(f">{1 + dims}I", raw[:head])
    if magic != 0x0800 + dims:
        raise ValueError(f"{path.name} is not an IDX file of {dims}-dimensional bytes (magic {magic:#x})")
    if len(raw) - head != math.prod(shape):
        raise ValueError(f"{path.name} holds {len(raw) - head} bytes, its header says {math.prod(shape)}")
    return torch.frombuffer(bytearray(raw[head:]), dtype=torch.uint8).reshape(shape)


def _images_labels(cfg: DataConfig, *, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Files on disk are read directly; torchvision only downloads missing ones."""
    where = raw_folder(cfg)
    images_file, labels_file = (where / f for f in _FILES[train])
    if not (images_file.is_file() and labels_file.is_file()):
        return _download(cfg, train=train, download=download)
    try:
        return _idx(images_file, dims=3), _idx(labels_file, dims=1)
    except (ValueError, OSError) as exc:
        raise DataError(
            f"cannot read {cfg.dataset} IDX files in {where}: {exc}; "
            "the files are truncated or not IDX files, replace them with the originals"
        ) from exc


def _read(cfg: DataConfig, *, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw uint8 images (N, 28, 28) and int64 labels (N,), checked for shape and range."""
    images, labels = _images_labels(cfg, train=train, download=download)
    where = raw_folder(cfg)
    if images.ndim != 3 or tuple(images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{where}: images have shape {tuple(images.shape)}, expected (N, 28, 28); "
            "these are not MNIST-format files"
        )
    if labels.shape != (images.shape[0],):
        raise DataError(
            f"{where}: {images.shape[0]} images but {labels.shape[0]} labels; "
            "the image and label files do not belong together"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= NUM_CLASSES):
        raise DataError(f"{where}: labels outside 0..9; these are not MNIST-format label files")
    return images.to(torch.uint8), labels.to(torch.int64)


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
    # Move uint8 first (4x fewer bytes over the bus), then normalize on the device.
    x = images.to(device).unsqueeze(1).float().div_(255.0).sub_(norm.mean).div_(norm.std)
    return Split(x=x.contiguous(), y=labels.to(device))


def load_train_val(cfg: DataConfig, *, device: torch.device, download: bool = True) -> TrainValData:
    """Training part and validation part of the official training split, on `device`."""
    images, labels = _read(cfg, train=True, download=download)
    train_idx, val_idx = split_indices(n=images.shape[0], val_size=cfg.val_size, seed=cfg.split_seed)
    train_pixels = images[train_idx].float().div_(255.0)
    norm = Normalization(mean=float(train_pixels.mean()), std=float(train_pixels.std()))
    return TrainValData(
        train=_to_split(images[train_idx], labels[train_idx], norm, device),
        val=_to_split(images[val_idx], labels[val_idx], norm, device),
        normalization=norm,
        fingerprint=fingerprint(dataset=cfg.dataset, images=images, labels=labels, val_idx=val_idx),
    )


def load_test(cfg: DataConfig, *, device: torch.device, normalization: Normalization) -> Split:
    """The official test split. Only the test-evaluation path (the lockbox) calls this."""
    images, labels = _read(cfg, train=False, download=True)
    return _to_split(images, labels, normalization, device)


def load_test_images(cfg: DataConfig) -> torch.Tensor:
    """Raw uint8 test images (N, 28, 28) for drawing misclassified examples."""
    return _read(cfg, train=False, download=False)[0]


def normalize_images(
    images: torch.Tensor, *, normalization: Normalization, device: torch.device
) -> torch.Tensor:
    """uint8 or 0..255 float images (N, 28, 28) -> normalized (N, 1, 28, 28) on `device`."""
    x = images.to(device).float().div(255.0).unsqueeze(1)
    return x.sub_(normalization.mean).div_(normalization.std)
