"""Bad input across commands: one line, exit != 0, no traceback; --debug / HPO_DEBUG=1 show it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import VAL_SIZE, write_idx_images
from tests.helpers import assert_one_line_error, hpo, search


@pytest.mark.parametrize("command", ["best", "trials", "report"])
def test_missing_study(workdir: Path, data_dir: Path, command: str) -> None:
    search(data_dir, trials=1)
    code, out, err = hpo(command, "--study", "ghost")
    assert_one_line_error(code, out, err, "no study named 'ghost'", "studies: s")


def test_empty_store(workdir: Path) -> None:
    code, out, err = hpo("best")
    assert_one_line_error(code, out, err, "no studies yet", "hpo search")


def test_truncated_idx_through_cli(workdir: Path, data_dir: Path) -> None:
    labels = data_dir / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:50])
    code, out, err = hpo("train", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--device", "cpu")
    assert_one_line_error(code, out, err, str(data_dir / "MNIST" / "raw"), "truncated or not IDX")


def test_wrong_image_shape_through_cli(workdir: Path, data_dir: Path) -> None:
    write_idx_images(data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte", np.zeros((1200, 32, 32)))
    code, out, err = hpo("search", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--device", "cpu")
    assert_one_line_error(code, out, err, "expected (N, 28, 28)")


def test_hpo_debug_env_shows_traceback(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.errors import DataError

    monkeypatch.setenv("HPO_DEBUG", "1")
    with pytest.raises(DataError):
        hpo("train", "--data-dir", tmp_path / "missing", "--device", "cpu")
