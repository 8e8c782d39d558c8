"""A user's own images: a folder of class folders (PATH/CLASS/*.png|jpg, or PATH/train/CLASS/... and
PATH/test/CLASS/...) or an .npz file (x, y and optionally x_test, y_test, class_names). Read once
into uint8 (N, C, H, W) tensors: grey images keep one channel, a colour image anywhere makes every
image RGB; every image is resized to one (H, W), `--image-size` or the size they all share.
Without a test split one is carved once, by a fixed seed (a seventh of the images, MNIST's 10,000
of 70,000), so every study of the same files has the same test split for the lockbox. Bad data is
one DataError naming the file or class and the fix; nothing is written."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hpo.config import DataConfig
from hpo.core.datasets import Dataset, DatasetSpec, Images, check_labels
from hpo.core.images import decode_rgb
from hpo.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MIN_PER_CLASS = 5  # a class needs images in the training, validation and test splits
TEST_SEED = 0  # the carved test split never changes with --split-seed: the lockbox holds one split


@dataclass(frozen=True)
class OwnData:
    train: Images
    test: Images
    classes: tuple[str, ...]


def open_user_data(cfg: DataConfig) -> Dataset:
    assert cfg.path is not None
    path = Path(cfg.path)
    if not path.exists():
        raise DataError(f"--data {path} does not exist: give a folder of class folders or an .npz file")
    data = _read_cached(str(path.resolve()), _stamp(path), cfg.image_size)
    images = data.train[0]
    spec = DatasetSpec(
        name=cfg.dataset,
        shape=(int(images.shape[1]), int(images.shape[2]), int(images.shape[3])),
        classes=data.classes,
        train_size=int(images.shape[0]),
        framing="resize",
    )
    return Dataset(spec=spec, read=lambda train, _download: data.train if train else data.test)


def _stamp(path: Path) -> str:
    """What changes when any file under `path` does (name, size, modification time): the decoded
    data is reused only while it holds (about 0.3 s for 70,000 files)."""
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(path)) if path.is_dir() else [(str(path.parent), [], [path.name])]:
        for name in sorted(files):
            st = os.stat(os.path.join(folder, name))
            h.update(f"{folder}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=2)  # a search reads the training split, the lockbox both: decode once
def _read_cached(path: str, _stamp: str, image_size: tuple[int, int] | None) -> OwnData:
    where = Path(path)
    if where.is_file():
        if image_size is not None:
            raise DataError(
                "--image-size resizes a folder's images; an .npz file's arrays are used as they are"
            )
        return _npz(where)
    return _folder(where, image_size=image_size)


def _class_files(root: Path) -> dict[str, list[Path]]:
    """CLASS -> its image files, sorted; a class folder without images or a non-image file is refused."""
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = "no class folder" if not classes else f"one class folder ({classes[0].name})"
        raise DataError(f"{root} has {found}: --data needs a folder holding one folder of images per class")
    files = {}
    for folder in classes:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        other = [p for p in entries if p.is_dir() or p.suffix.lower() not in IMAGE_SUFFIXES]
        if other:
            raise DataError(f"{other[0]} is not a PNG or JPEG file: move it out of the class folders")
        if not entries:
            raise DataError(f"class folder {folder} is empty: add its images or remove the folder")
        files[folder.name] = entries
    return files


def _folder(root: Path, *, image_size: tuple[int, int] | None) -> OwnData:
    split = (root / "train").is_dir() and (root / "test").is_dir()
    train_files = _class_files(root / "train" if split else root)
    test_files = _class_files(root / "test") if split else {}
    if split and sorted(test_files) != sorted(train_files):
        raise DataError(
            f"{root}/train and {root}/test have different class folders: give both the same classes"
        )
    classes = tuple(train_files)
    _check_counts({c: len(f) for c, f in train_files.items()}, where=root)
    # Every training image (by class), then every test image: `stacked[:n]` is the training split.
    every = [p for c in classes for p in train_files[c]] + [p for c in classes for p in test_files.get(c, [])]
    arrays = [decode_rgb(p) for p in every]
    size = image_size or _shared_size(arrays, every)
    stacked = _stack(arrays, size=size)
    labels = torch.tensor([i for i, c in enumerate(classes) for _ in train_files[c]], dtype=torch.int64)
    n = len(labels)
    train = (stacked[:n], labels)
    if split:
        test_labels = [i for i, c in enumerate(classes) for _ in test_files[c]]
        return OwnData(train=train, test=(stacked[n:], torch.tensor(test_labels)), classes=classes)
    return OwnData(*_carve(train), classes=classes)


def _check_counts(counts: dict[str, int], *, where: Path) -> None:
    few = {c: n for c, n in counts.items() if n < MIN_PER_CLASS}
    if few:
        name, n = next(iter(few.items()))
        raise DataError(
            f"{where}: class {name!r} has {n} image(s), fewer than {MIN_PER_CLASS}: "
            "every class needs images to train on, to validate and to test; add images or drop the class"
        )


def _shared_size(arrays: list[np.ndarray], files: list[Path]) -> tuple[int, int]:
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        first = arrays[0].shape[:2]
        other = next(i for i, a in enumerate(arrays) if a.shape[:2] != first)
        raise DataError(
            f"the images differ in size ({files[0].name}: {first[0]}x{first[1]}, {files[other]}: "
            f"{arrays[other].shape[0]}x{arrays[other].shape[1]}): give --image-size HxW (e.g. 32 or 64x48) "
            "to resize them all"
        )
    height, width = next(iter(sizes))
    return int(height), int(width)


def _stack(arrays: list[np.ndarray], *, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) uint8 arrays -> uint8 (N, C, H, W) at `size`: one channel when every image is grey."""
    from hpo.core.images import resize_rgb

    resized = np.stack([a if a.shape[:2] == size else resize_rgb(a, size=size) for a in arrays])
    grey = bool((resized[..., 0] == resized[..., 1]).all() and (resized[..., 1] == resized[..., 2]).all())
    out = torch.from_numpy(resized).permute(0, 3, 1, 2)  # (N, 3, H, W)
    return (out[:, :1] if grey else out).contiguous()


def _carve(data: Images) -> tuple[Images, Images]:
    """(train, test): a seventh of the images, drawn by TEST_SEED, held out for the lockbox."""
    images, labels = data
    n = len(labels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(TEST_SEED))
    test, train = perm[: max(1, n // 7)].sort().values, perm[max(1, n // 7) :].sort().values
    return (images[train], labels[train]), (images[test], labels[test])


def _npz(path: Path) -> OwnData:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}): save it with numpy.savez") from None
    if "x" not in arrays or "y" not in arrays:
        raise DataError(
            f"{path} holds {sorted(arrays)}: an .npz for --data needs arrays x and y (and x_test, y_test)"
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: x_test and y_test come together: save both or neither")
    x, y = _images(arrays["x"], where=f"{path}: x"), _labels(arrays["y"], where=f"{path}: y")
    k = max(int(y.max()) + 1, 2)  # one label only is refused by the counts below
    names = (
        tuple(str(n) for n in arrays["class_names"]) if "class_names" in arrays else tuple(map(str, range(k)))
    )
    check_labels(y, images=len(x), classes=len(names), where=str(path))
    _check_counts({names[i]: int((y == i).sum()) for i in range(len(names))}, where=path)
    if "x_test" not in arrays:
        train, test = _carve((x, y))
        return OwnData(train=train, test=test, classes=names)
    xt, yt = (
        _images(arrays["x_test"], where=f"{path}: x_test"),
        _labels(arrays["y_test"], where=f"{path}: y_test"),
    )
    check_labels(yt, images=len(xt), classes=len(names), where=f"{path} (test)")
    if xt.shape[1:] != x.shape[1:]:
        raise DataError(
            f"{path}: x_test images are {tuple(xt.shape[1:])}, x's {tuple(x.shape[1:])}: make them one size"
        )
    return OwnData(train=(x, y), test=(xt, yt), classes=names)


def _images(a: np.ndarray, *, where: str) -> torch.Tensor:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3, uint8 0..255 or float 0..1 ->
    uint8 (N, C, H, W)."""
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3) and a.shape[1] not in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.ndim != 4 or a.shape[1] not in (1, 3) or len(a) == 0:
        raise DataError(
            f"{where} has shape {a.shape}: give images as (N, H, W) or (N, H, W, C) with C 1 or 3"
        )
    if a.dtype != np.uint8:
        if (
            not np.issubdtype(a.dtype, np.number)
            or a.min() < 0
            or a.max() > (1.0 if a.dtype.kind == "f" else 255)
        ):
            raise DataError(
                f"{where} is {a.dtype} outside 0..1 (floats) or 0..255: give uint8 pixels or floats in 0..1"
            )
        a = (a * 255).round() if a.dtype.kind == "f" else a
    return torch.from_numpy(np.ascontiguousarray(a.astype(np.uint8)))


def _labels(a: np.ndarray, *, where: str) -> torch.Tensor:
    if a.ndim != 1 or a.dtype.kind not in "iu" or len(a) == 0 or a.min() < 0:
        raise DataError(
            f"{where} must be class indices 0..K-1 as one row of integers; got {a.dtype} {a.shape}"
        )
    return torch.from_numpy(a.astype(np.int64))
