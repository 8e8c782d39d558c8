"""End-to-end checks on the real datasets in ../shared/datasets (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import hpo

pytestmark = pytest.mark.real_data


def test_train_mlp_on_real_mnist_reaches_97(workdir: Path, real_data: Path, device: str) -> None:
    code, out, err = hpo(
        "train", "--dataset", "mnist", "--model", "mlp", "--hidden", "300,100",
        "--optimizer", "sgd",
        "--lr", 0.05, "--momentum", 0.9, "--batch-size", 128, "--epochs", 2,
        "--data-dir", real_data, "--device", device, "-q",
    )  # fmt: skip
    assert code == 0, out + err
    from hpo.tracking import Tracker

    tracker = Tracker()
    (run,) = tracker.runs(tracker.experiment("train"))
    history = tracker.metric_history(run.run_id, "val_accuracy")
    assert len(history) == 2 and max(v for _, v in history) >= 0.97
