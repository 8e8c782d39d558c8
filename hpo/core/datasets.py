"""The datasets hpo knows: each is one registered `DatasetSpec` in `DATASETS` (its shape, classes,
training-split size, where its files live and how `hpo predict` frames a user's image like its
own), and `open_registered` turns a `DataConfig` into a `Dataset` that reads its splits as uint8
(N, C, H, W) images and int64 labels. A user's own data (`--data PATH`) is read by
`hpo.core.user_data` and described by a spec of the same kind.

Adding a dataset of IDX files: an entry in `DATASETS` (and its name in `config.DatasetName`)."""

from __future__ import annotations

import contextlib
import io
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from hpo.config import DataConfig
from hpo.errors import DataError, first_line

# How `hpo predict` makes a user's photo look like the data: MNIST's digit recipe (fit into 20x20,
# centred by mass in 28x28), Fashion-MNIST's object recipe (fit the 28x28 frame), or, for a user's
# own images, resized to the data's size as the training images were.
Framing = Literal["digit", "object", "resize"]
Images = tuple[torch.Tensor, torch.Tensor]  # uint8 (N, C, H, W), int64 (N,)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    shape: tuple[int, int, int]  # (channels, height, width) of one image
    classes: tuple[str, ...]  # class names, by label
    train_size: int  # images in its training split (validation is carved from them)
    framing: Framing
    folder: str = ""  # a registered dataset's folder under --data-dir (torchvision's layout)


@dataclass(frozen=True)
class Dataset:
    """A dataset ready to read: its spec and its reader (train split or test split)."""

    spec: DatasetSpec
    read: Callable[[bool, bool], Images]  # (train, download) -> images, labels


FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        shape=(1, 28, 28),
        classes=tuple(str(d) for d in range(10)),
        train_size=60_000,
        framing="digit",
        folder="MNIST",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        shape=(1, 28, 28),
        classes=FASHION_CLASSES,
        train_size=60_000,
        framing="object",
        folder="FashionMNIST",
    ),
}
_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def open_registered(cfg: DataConfig) -> Dataset:
    """The registered dataset `cfg` names, read from `cfg.data_dir`."""
    spec = DATASETS[cfg.dataset]
    folder = raw_folder(cfg)
    return Dataset(
        spec=spec,
        read=lambda train, download: _read_idx(
            spec, folder=folder, data_dir=cfg.data_dir, train=train, download=download
        ),
    )


def raw_folder(cfg: DataConfig) -> Path:
    return Path(cfg.data_dir) / DATASETS[cfg.dataset].folder / "raw"


def _missing_message(spec: DatasetSpec, folder: Path, *, train: bool, reason: str) -> str:
    files = ", ".join(_FILES[train])
    return (
        f"{spec.name} not found ({reason}): expected {files} under {folder}; "
        f"copy the IDX files there or point --data-dir/HPO_DATA_DIR at a folder that has them"
    )


def _download(spec: DatasetSpec, folder: Path, *, data_dir: str, train: bool, download: bool) -> Images:
    """Files that are not on disk, fetched by torchvision (imported here: its ~2 s of import are
    paid only when something must be downloaded)."""
    if not download:
        raise DataError(_missing_message(spec, folder, train=train, reason="download disabled"))
    from torchvision.datasets import MNIST, FashionMNIST

    cls = MNIST if spec.name == "mnist" else FashionMNIST
    new = [p for p in (folder, *folder.parents) if not p.exists()]  # what a download would create
    try:
        # torchvision prints download progress to stdout; only the CLI may talk to the user.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ds = cls(root=data_dir, train=train, download=True)
    except Exception as exc:  # offline (RuntimeError, OSError, URLError...) or a bad archive
        for path in new:  # deepest first: a mistyped --data-dir leaves no empty folders behind
            with contextlib.suppress(OSError):
                path.rmdir()
        reason = f"not on disk, and the download failed: {first_line(exc).rstrip(': ')}"
        raise DataError(_missing_message(spec, folder, train=train, reason=reason)) from exc
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


def _idx_files(spec: DatasetSpec, folder: Path, *, data_dir: str, train: bool, download: bool) -> Images:
    """Files on disk are read directly; torchvision only downloads missing ones."""
    images_file, labels_file = (folder / f for f in _FILES[train])
    if not (images_file.is_file() and labels_file.is_file()):
        return _download(spec, folder, data_dir=data_dir, train=train, download=download)
    try:
        return _idx(images_file, dims=3), _idx(labels_file, dims=1)
    except (ValueError, OSError) as exc:
        raise DataError(
            f"cannot read {spec.name} IDX files in {folder}: {exc}; "
            "the files are truncated or not IDX files, replace them with the originals"
        ) from exc


def _read_idx(spec: DatasetSpec, *, folder: Path, data_dir: str, train: bool, download: bool) -> Images:
    """Raw uint8 images (N, 1, 28, 28) and int64 labels (N,), checked for shape and range."""
    images, labels = _idx_files(spec, folder, data_dir=data_dir, train=train, download=download)
    if images.ndim != 3 or tuple(images.shape[1:]) != spec.shape[1:]:
        raise DataError(
            f"{folder}: images have shape {tuple(images.shape)}, expected (N, 28, 28); "
            "these are not MNIST-format files"
        )
    check_labels(labels, images=len(images), classes=len(spec.classes), where=str(folder))
    return images.to(torch.uint8).unsqueeze(1), labels.to(torch.int64)


def check_labels(labels: torch.Tensor, *, images: int, classes: int, where: str) -> None:
    """One label per image, each a class index."""
    if labels.shape != (images,):
        raise DataError(
            f"{where}: {images} images but {labels.shape[0]} labels; "
            "the images and labels do not belong together"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise DataError(f"{where}: labels outside 0..{classes - 1}; these are not this dataset's label files")
