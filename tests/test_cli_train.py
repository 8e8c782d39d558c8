from __future__ import annotations

from pathlib import Path

import pytest

from hpo.cli import app
from tests.conftest import VAL_SIZE
from tests.helpers import assert_one_line_error, hpo


def all_commands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_every_command_has_help() -> None:
    commands = all_commands()
    assert "train" in commands
    for name in commands:
        code, out, _ = hpo(name, "--help")
        assert code == 0 and "Usage" in out and len(out) > 200, name


def test_version_and_bare_help() -> None:
    assert hpo("--version")[1].startswith("hpo ")
    code, out, _ = hpo("--help")
    assert code == 0 and "train" in out


def test_train_logs_run_with_metrics_and_rebuildable_checkpoint(
    workdir: Path, data_dir: Path, device: str
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
    )
    assert code == 0, out + err
    assert "Best validation accuracy" in out and "MLflow run" in out

    from hpo.checkpoint import read_checkpoint
    from hpo.config import DataConfig
    from hpo.data import load_train_val
    from hpo.tracking import Tracker
    from hpo.train import evaluate, resolve_device

    tracker = Tracker()
    (run,) = tracker.runs(tracker.experiment("train"))
    assert run.status == "FINISHED"
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds", "lr"):
        assert [s for s, _ in tracker.metric_history(run.run_id, key)] == [1, 2], key
    assert run.params["model.hidden"] == "64" and run.params["optim.lr"] == "0.05"
    for tag in ("hpo_version", "torch_version", "device", "dataset", "split_fingerprint", "seed"):
        assert run.tags[tag], tag
    assert (workdir / "mlruns" / "artifacts").is_dir()

    folder = tracker.download(run.run_id, "checkpoint", dst=workdir / "dl")
    loaded = read_checkpoint(folder)
    data = load_train_val(
        DataConfig(data_dir=str(data_dir), val_size=VAL_SIZE), device=resolve_device(device)
    )
    assert loaded.meta["fingerprint"] == data.fingerprint == run.tags["split_fingerprint"]
    _, acc = evaluate(loaded.model.to(data.val.x.device), data.val)
    best = max(v for _, v in tracker.metric_history(run.run_id, "val_accuracy"))
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


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--lr", "-0.1"], "--lr must be a positive"),
        (["--dataset", "cifar10"], "unknown dataset 'cifar10'"),
        (["--model", "rnn"], "unknown model 'rnn'"),
        (["--optimizer", "lbfgs"], "unknown optimizer"),
        (["--hidden", "300,x"], "--hidden expects"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--val-size", "60000"], "--val-size must be between"),
        (["--epochs", "two"], "Invalid value for '--epochs'"),
        (["--no-such-flag"], "No such option"),
        (["--device", "cuda:7"], "not available"),
    ],
)
def test_bad_values_give_one_line(workdir: Path, data_dir: Path, args: list[str], needle: str) -> None:
    code, out, err = hpo("train", "--data-dir", data_dir, *args)
    assert_one_line_error(code, out, err, needle)


def test_missing_data_dir_is_one_line(workdir: Path, tmp_path: Path) -> None:
    code, out, err = hpo("train", "--data-dir", tmp_path / "missing", "--device", "cpu")
    assert_one_line_error(code, out, err, "train-images-idx3-ubyte", "--data-dir")
    assert code == 1


def test_debug_shows_traceback(workdir: Path, tmp_path: Path) -> None:
    from hpo.errors import DataError

    with pytest.raises(DataError):
        hpo("--debug", "train", "--data-dir", tmp_path / "missing", "--device", "cpu")
