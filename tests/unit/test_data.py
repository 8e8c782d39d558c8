from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from hpo.config import DataConfig
from hpo.core.data import load_test, load_train_val, split_indices
from hpo.errors import ConfigError, DataError
from tests.synthetic import TEST_IMAGES, TRAIN_IMAGES, VAL_SIZE

CPU = torch.device("cpu")


def cfg(data_dir: Path, **kw: object) -> DataConfig:
    return DataConfig(**{"dataset": "mnist", "data_dir": str(data_dir), "val_size": VAL_SIZE, **kw})


def test_loads_synthetic_idx_files(synthetic_root: Path) -> None:
    data = load_train_val(cfg(synthetic_root), device=CPU)
    assert data.train.x.shape == (TRAIN_IMAGES - VAL_SIZE, 1, 28, 28)
    assert data.val.x.shape == (VAL_SIZE, 1, 28, 28)
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64
    # normalization statistics come from the training part only
    assert abs(float(data.train.x.mean())) < 1e-4
    assert abs(float(data.train.x.std()) - 1) < 1e-3
    # ...and applied unchanged to the validation part: its mean is its raw mean in those units
    raw = np.frombuffer((synthetic_root / "MNIST/raw/train-images-idx3-ubyte").read_bytes()[16:], np.uint8)
    _, val_idx = split_indices(n=TRAIN_IMAGES, val_size=VAL_SIZE, seed=0)
    val_raw = raw.reshape(-1, 28, 28)[val_idx.numpy()].astype(np.float64) / 255
    norm = data.normalization
    assert float(data.val.x.mean()) == pytest.approx((val_raw.mean() - norm.mean) / norm.std, abs=1e-4)
    assert float(data.val.x.mean()) != pytest.approx(0.0, abs=1e-3)


def test_split_is_deterministic_disjoint_and_seeded() -> None:
    tr1, va1 = split_indices(n=1000, val_size=100, seed=3)
    tr2, va2 = split_indices(n=1000, val_size=100, seed=3)
    assert torch.equal(tr1, tr2) and torch.equal(va1, va2)
    assert not set(tr1.tolist()) & set(va1.tolist())
    assert len(set(tr1.tolist()) | set(va1.tolist())) == 1000
    _, va3 = split_indices(n=1000, val_size=100, seed=4)
    assert not torch.equal(va1, va3)


def test_fingerprint_identifies_split_and_data(synthetic_root: Path) -> None:
    a = load_train_val(cfg(synthetic_root), device=CPU).fingerprint
    assert a == load_train_val(cfg(synthetic_root), device=CPU).fingerprint
    assert a != load_train_val(cfg(synthetic_root, split_seed=1), device=CPU).fingerprint
    assert a != load_train_val(cfg(synthetic_root, dataset="fashion-mnist"), device=CPU).fingerprint


def test_test_split_only_through_explicit_loader(synthetic_root: Path) -> None:
    data = load_train_val(cfg(synthetic_root), device=CPU)
    test = load_test(cfg(synthetic_root), device=CPU, normalization=data.normalization)
    assert len(test) == TEST_IMAGES


def test_missing_folder_names_dataset_files_and_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_train_val(cfg(tmp_path / "nowhere"), device=CPU, download=False)
    msg = str(err.value)
    assert "mnist" in msg and "train-images-idx3-ubyte" in msg and "--data-dir" in msg
    assert "\n" not in msg


def test_missing_files_when_download_fails_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.mnist as tv

    def offline(*_a: object, **_k: object) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(tv.MNIST, "download", offline)
    with pytest.raises(DataError, match=r"no network.*HPO_DATA_DIR"):
        load_train_val(cfg(tmp_path / "empty"), device=CPU, download=True)


def test_truncated_idx_file_is_a_clear_error(data_dir: Path) -> None:
    images = data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(DataError, match="truncated or not IDX"):
        load_train_val(cfg(data_dir), device=CPU)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda b: b[:10], "shorter than its header"),
        (lambda b: b"\x00\x00\x08\x01" + b[4:], "not an IDX file of 3-dimensional bytes"),
        (lambda b: b + b"\x00", "its header says"),
    ],
)
def test_damaged_idx_headers_are_clear_errors(
    data_dir: Path, damage: Callable[[bytes], bytes], why: str
) -> None:
    images = data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(damage(images.read_bytes()))
    with pytest.raises(DataError, match=why) as err:
        load_train_val(cfg(data_dir), device=CPU)
    assert "replace them with the originals" in str(err.value)


def test_files_on_disk_load_without_importing_torchvision(synthetic_root: Path) -> None:
    """torchvision (about 2 s of import) is only for downloads: start-up does not pay for it."""
    code = (
        "import sys; from hpo.config import DataConfig; from hpo.core.data import load_train_val; "
        "import torch; "
        f"d = load_train_val(DataConfig(data_dir={str(synthetic_root)!r}, val_size={VAL_SIZE}), "
        "device=torch.device('cpu')); print(len(d.train), 'torchvision' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == [str(TRAIN_IMAGES - VAL_SIZE), "False"], done.stderr[-2000:]


def test_mismatched_label_count_is_a_clear_error(data_dir: Path) -> None:
    import numpy as np

    from tests.synthetic import write_idx_labels

    write_idx_labels(data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(10))
    with pytest.raises(DataError, match="do not belong together"):
        load_train_val(cfg(data_dir), device=CPU)


def test_val_size_must_leave_training_images(synthetic_root: Path) -> None:
    with pytest.raises(DataError, match="smaller --val-size"):
        load_train_val(cfg(synthetic_root, val_size=TRAIN_IMAGES), device=CPU)
    with pytest.raises(ConfigError):
        DataConfig(val_size=0)  # a size above the split is refused when it is read (above)
    with pytest.raises(ConfigError, match="unknown dataset"):
        DataConfig(dataset="cifar")
