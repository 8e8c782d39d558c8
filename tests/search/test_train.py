"""One tracked run, through `hpo train`: params, metrics, provenance, checkpoint, status."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.stores.mlflow import MlflowStore
from tests.helpers import hpo
from tests.synthetic import VAL_SIZE


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_logs_run_with_metrics_and_rebuildable_checkpoint(
    workdir: Path, data_dir: Path, device: str, precision: str
) -> None:
    code, out, err = hpo(
        "train",
        "--data-dir",
        data_dir,
        "--val-size",
        VAL_SIZE,
        "--hidden",
        "64",
        "--epochs",
        2,
        "--batch-size",
        64,
        "--device",
        device,
        "--precision",
        precision,
    )
    assert code == 0, out + err
    assert "Best validation accuracy" in out and "MLflow run" in out and f", {precision};" in out

    from hpo.config import DataConfig
    from hpo.core.checkpoint import read_checkpoint
    from hpo.core.data import load_train_val
    from hpo.core.device import resolve_device
    from hpo.core.engine import evaluate

    store = MlflowStore()
    (run,) = store.runs(store.experiment("train"))
    assert run.status == "FINISHED"
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds", "lr"):
        assert [s for s, _ in store.metric_history(run.run_id, key)] == [1, 2], key
    # one spelling: the MLflow param is the config field and the flag's name
    assert run.params["hidden"] == "64" and run.params["lr"] == "0.05" and run.params["epochs"] == "2"
    assert run.params["precision"] == precision
    assert run.tags["outcome"] == "completed" and run.tags["command"].startswith("hpo train --data-dir ")
    for tag in ("hpo_version", "torch_version", "device", "dataset", "split_fingerprint", "seed"):
        assert run.tags[tag], tag
    assert (workdir / "mlruns" / "artifacts").is_dir()

    folder = store.download(run.run_id, "checkpoint", dst=workdir / "dl")
    loaded = read_checkpoint(folder)
    data = load_train_val(
        DataConfig(data_dir=str(data_dir), val_size=VAL_SIZE), device=resolve_device(device)
    )
    assert loaded.meta["fingerprint"] == data.fingerprint == run.tags["split_fingerprint"]
    _, acc = evaluate(loaded.model.to(data.val.x.device), data.val)
    best = max(v for _, v in store.metric_history(run.run_id, "val_accuracy"))
    assert acc == pytest.approx(best)


def test_train_cnn_seed_001(workdir: Path, data_dir: Path, device: str) -> None:
    code, out, err = hpo(
        "train",
        "--data-dir",
        data_dir,
        "--val-size",
        VAL_SIZE,
        "--model",
        "cnn",
        "--channels",
        "10,20",
        "--kernel-size",
        5,
        "--padding",
        "valid",
        "--fc-width",
        0,
        "--optimizer",
        "sgd",
        "--lr",
        0.01,
        "--momentum",
        0.5,
        "--schedule",
        "exponential",
        "--gamma",
        0.7,
        "--epochs",
        1,
        "--device",
        device,
        "-q",
    )
    assert code == 0, out + err
    assert "8,490 parameters" in out


def test_diverged_training_exits_nonzero_with_advice(workdir: Path, data_dir: Path) -> None:
    code, out, _ = hpo(
        "train",
        "--data-dir",
        data_dir,
        "--val-size",
        VAL_SIZE,
        "--lr",
        1e6,
        "--epochs",
        3,
        "--device",
        "cpu",
        "-q",
    )
    assert code == 1 and "diverged" in out and "--lr" in out
