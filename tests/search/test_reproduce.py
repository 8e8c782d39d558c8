"""`hpo reproduce`: a trial retrained from its records gives the same curve on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from tests.helpers import FIXED, assert_one_line_error, hpo, open_study, search


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_reproduce_retrains_a_trial_exactly(workdir: Path, data_dir: Path, precision: str) -> None:
    """bf16 included: a trial is retrained at the precision it trained at, or the curves differ."""
    search(data_dir, trials=2, epochs=3, space=FIXED, pruner="none", precision=precision)
    code, out, err = hpo("reproduce", "--study", "s", "--trial", 1, "--data-dir", data_dir, "--device", "cpu")
    assert code == 0, out + err
    assert "Reproduced trial 1 of study 's' (3 epochs)" in out and "difference +0.00 points" in out
    original = link.run_id(open_study("s").row(1))
    store = MlflowStore()
    (rerun,) = [r for r in store.runs(store.experiment("s")) if r.tags.get(link.ROLE) == link.ROLE_REPRODUCE]
    assert rerun.name == "reproduce-0001" and rerun.status == "FINISHED"
    assert rerun.tags[link.REPRODUCES] == original and rerun.params["seed"] == "1"
    assert rerun.params["precision"] == store.run(original).params["precision"] == precision
    assert store.metric_history(rerun.run_id, "val_loss") == store.metric_history(original, "val_loss")


def test_reproduce_refuses_what_it_cannot_retrain(workdir: Path, data_dir: Path, tmp_path: Path) -> None:
    from tests.synthetic import make_dataset

    search(data_dir, trials=1, epochs=1, space=FIXED, pruner="none")
    code, out, err = hpo("reproduce", "--trial", 7, "--data-dir", data_dir)
    assert_one_line_error(code, out, err, "has no trial 7")
    other = make_dataset(tmp_path / "other", "MNIST", seed=42)
    code, out, err = hpo("reproduce", "--trial", 0, "--data-dir", other, "--device", "cpu")
    assert_one_line_error(code, out, err, "split fingerprint", "--data-dir")


def test_a_bf16_trial_is_not_retrained_where_bf16_cannot_run(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reproducing at another precision would not be a reproduction: on a device without bf16
    autocast (MPS, faked here) it is one line, and no run is created."""
    import torch

    from hpo.results import reproduce

    search(data_dir, trials=1, epochs=1, space=FIXED, pruner="none", precision="bf16")
    monkeypatch.setattr(reproduce, "resolve_device", lambda name: torch.device("mps"))
    code, out, err = hpo("reproduce", "--trial", 0, "--data-dir", data_dir)
    assert_one_line_error(code, out, err, "runs on cpu and cuda, not mps", "reproduce it with --device cpu")
    store = MlflowStore()
    roles = [r.tags.get(link.ROLE) for r in store.runs(store.experiment("s"))]
    assert link.ROLE_REPRODUCE not in roles
