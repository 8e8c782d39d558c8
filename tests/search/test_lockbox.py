"""`hpo best` and `hpo best --evaluate-test`: the test-set lockbox."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hpo.config import DataConfig
from hpo.core.datasets import Dataset, Images
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from tests.helpers import (
    FAULT_DRIVER,
    STORE,
    assert_one_line_error,
    env_for_subprocess,
    hpo,
    open_study,
    search,
)
from tests.synthetic import VAL_SIZE


def best_run_id(study: str = "s") -> str:
    return str(open_study(study).best().attrs[link.RUN_ID])  # type: ignore[union-attr]


def test_best_shows_trial_and_unused_test_set(searched: Path) -> None:
    code, out, err = hpo("best", "--study", "s")
    assert code == 0, out + err
    for needle in ("best trial", "validation accuracy", "MLflow run", "checkpoint", "never used"):
        assert needle in out
    best = open_study("s").best()
    assert best is not None
    rows = [line.split() for line in out.splitlines()]
    shown = {r[0] + " " + r[1]: r[-1] for r in rows if len(r) > 1}  # a long path folds onto a line of its own
    assert shown["best trial"] == str(best.number) and shown["best epoch"] == str(best.attrs[link.BEST_EPOCH])
    assert shown["validation accuracy"] == f"{100 * (best.value or 0):.2f}%"
    assert shown["MLflow run"] == link.run_id(best)
    assert "test accuracy" not in out  # plain `best` never touches the test set
    assert open_study("s").attr(link.TEST_EVALUATIONS) is None


def test_evaluate_test_once_then_refuse_then_force(searched: Path) -> None:
    code, out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert code == 0, out + err
    assert (
        "test accuracy" in out and "Per-class accuracy (hardest first)" in out and "Confusion matrix" in out
    )
    assert "summed NLL" in out and "test-set uses 1" in out
    store, run_id = MlflowStore(), best_run_id()
    run = store.run(run_id)
    assert {"test_accuracy", "test_nll", "test_nll_sum"} <= set(run.metrics)
    assert run.metrics["test_accuracy"] > 0.9 and run.tags["test_evaluations"] == "1"
    assert sorted(a.path for a in store.client.list_artifacts(run_id, "test")) == [
        "test/confusion_matrix.png",
        "test/misclassified.png",
    ]
    parent = store.run(open_study("s").attr(link.PARENT_RUN_ID))
    assert parent.metrics["test_accuracy"] == run.metrics["test_accuracy"]

    code, out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert_one_line_error(code, "", err, "already used", "test accuracy", "--force")
    assert code != 0

    code, out, err = hpo("best", "--evaluate-test", "--force", "--data-dir", searched)
    assert code == 0 and "test-set uses 2" in out
    assert "used 2 time(s)" in hpo("best")[1]
    assert store.run(run_id).tags["test_evaluations"] == "2"
    assert len(open_study("s").attr(link.TEST_EVALUATIONS)) == 2
    code, out, _ = hpo("studies")
    assert code == 0 and out.rstrip().endswith("2")


def _weights_file(run_id: str) -> Path:
    uri = MlflowStore().run(run_id).artifact_uri
    return Path(uri.removeprefix("file://")) / "checkpoint" / "model.pt"


@pytest.mark.parametrize("damage", ["truncate", "delete-folder", "tamper-config"])
def test_damaged_checkpoint_is_clear_and_records_nothing(searched: Path, damage: str) -> None:
    weights = _weights_file(best_run_id())
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
        needle = "model.pt are corrupt"
    elif damage == "tamper-config":  # a config asking for a 21-billion-parameter model: never built
        config = weights.with_name("config.json")
        raw = json.loads(config.read_text())
        raw["model"]["hidden"] = [65536] * 6
        config.write_text(json.dumps(raw))
        needle = "parameters that the weights"
    else:
        import shutil

        shutil.rmtree(weights.parent.parent)
        needle = "cannot be read"
    code, _out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert_one_line_error(code, "", err, needle)
    assert open_study("s").attr(link.TEST_EVALUATIONS) is None


def test_evaluate_refuses_other_data(searched: Path, tmp_path: Path) -> None:
    from tests.synthetic import make_dataset

    other = make_dataset(tmp_path / "other", "MNIST", seed=42)
    code, _out, err = hpo("best", "--evaluate-test", "--data-dir", other)
    assert_one_line_error(code, "", err, "split fingerprint", "--data-dir")
    assert open_study("s").attr(link.TEST_EVALUATIONS) is None


def test_best_without_study_or_complete_trial(workdir: Path, data_dir: Path) -> None:
    space = {
        "mlp_layers": 1,
        "mlp_width": [16],
        "lr": {"low": 1e4, "high": 1e5},
        "optimizer": ["sgd"],
        "momentum": [0.9],
        "schedule": ["none"],
    }
    search(data_dir, trials=1, space=space)  # diverges: pruned, never complete
    code, out, err = hpo("best", "--study", "ghost")
    assert_one_line_error(code, out, err, "no study named 'ghost'")
    code, out, err = hpo("best", "--study", "s")
    assert_one_line_error(code, out, err, "no complete trial")


@pytest.mark.slow
def test_two_concurrent_looks_give_one_score(searched: Path) -> None:
    """Two real processes ask for the test look at once: the check-and-record is atomic."""
    _two_looks(searched, storage=STORE)


@pytest.mark.slow
def test_two_concurrent_looks_on_postgresql(workdir: Path, data_dir: Path, postgres_url: str) -> None:
    """The same on a PostgreSQL study store, where the lock is the server's advisory lock."""
    search(data_dir, trials=2, epochs=2, storage=postgres_url)
    _two_looks(data_dir, storage=postgres_url)


def _two_looks(data_dir: Path, *, storage: str) -> None:
    """Each claim takes a second to write (fault driver), so without the store lock both
    processes would read "no look yet" and both would evaluate."""
    driver = [sys.executable, str(FAULT_DRIVER), "slow-claim"]
    command = [*driver, "best", "--evaluate-test", "--data-dir", str(data_dir), "--device", "cpu"]
    command += ["--storage", storage, "--study", "s"]  # a shared server store may hold other tests' studies
    procs = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for_subprocess()
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert sorted(p.returncode for p in procs) == [0, 1], outs
    scored = [out for out, _ in outs if "Per-class accuracy" in out]
    refused = [err for _, err in outs if err.strip()]
    assert len(scored) == 1 and len(refused) == 1 and "Traceback" not in refused[0]
    assert "already used" in refused[0] or "being evaluated by another process" in refused[0]
    records = link.lockbox_records(open_study("s", storage))
    assert len(records) == 1 and "pending" not in records[0] and records[0]["accuracy"] > 0.9


def test_claim_of_a_dead_process_is_void_and_failures_record_nothing(
    searched: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from hpo.results import lockbox
    from hpo.stores.owner import host_id

    dead = subprocess.run(["true"], check=True)
    del dead
    handle = open_study("s")
    # a claim left by a process of this host that died (no pid can exceed Linux's 2**22 limit)
    stale = {"time": "t", "trial": 0, "run_id": "r", "pending": True, "host": host_id(), "pid": 2**22 + 7}
    handle.set_attr(link.TEST_EVALUATIONS, [stale])
    assert "being evaluated now" in hpo("best")[1]

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk gone")

    with monkeypatch.context() as patched:
        patched.setattr(lockbox, "load_test", boom)
        code, _, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert code == 1 and "disk gone" in err
    assert link.lockbox_records(handle) == []  # the void claim is cleared, the failed one withdrawn
    code, out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert code == 0 and "test-set uses 1" in out, out + err
    (record,) = link.lockbox_records(handle)
    assert record["pid"] == os.getpid() and "pending" not in record


def test_ensemble_is_chosen_on_validation_and_recorded_with_the_look(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=3, epochs=2)
    handle = open_study("s")
    ranked = sorted(handle.rows(states=("COMPLETE",)), key=lambda r: (-(r.value or 0), r.number))
    code, out, err = hpo("best", "--evaluate-test", "--ensemble", 3, "--data-dir", data_dir)
    assert code == 0, out + err
    assert f"ensemble of 3 (trials {', '.join(str(r.number) for r in ranked)})" in out
    (record,) = link.lockbox_records(handle)
    assert record["members"] == [r.number for r in ranked] and record["trial"] == ranked[0].number
    assert 0.5 < record["ensemble_val_accuracy"] <= 1 and 0.5 < record["ensemble_accuracy"] <= 1
    parent = MlflowStore().run(link.parent_run_id(handle))
    assert parent.metrics["test_ensemble_accuracy"] == record["ensemble_accuracy"]
    assert parent.tags["test_ensemble_members"] == ",".join(str(r.number) for r in ranked)
    assert "ensemble of 3:" in " ".join(hpo("best")[1].split())  # the table may wrap it
    code, out, err = hpo("best", "--evaluate-test", "--ensemble", 3, "--data-dir", data_dir)
    assert_one_line_error(code, "", err, "already used")


def test_ensemble_needs_enough_complete_trials(searched: Path) -> None:
    code, out, err = hpo("best", "--evaluate-test", "--ensemble", 5, "--data-dir", searched)
    assert_one_line_error(code, out, err, "fewer than --ensemble 5")
    assert link.lockbox_records(open_study("s")) == []


def test_nothing_but_the_lockbox_reads_the_test_split(
    workdir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """search, train, reproduce, baselines and every read-only command run with the test split's
    reader made to fail; only --evaluate-test needs it."""
    from hpo.core import data as hpo_data

    real_open = hpo_data.open_dataset

    def train_split_only(cfg: DataConfig) -> Dataset:
        dataset = real_open(cfg)

        def read(train: bool, download: bool) -> Images:
            if not train:
                raise AssertionError("the test split was read")
            return dataset.read(train, download)

        return dataclasses.replace(dataset, read=read)

    common = ["--data-dir", data_dir, "--device", "cpu"]
    with monkeypatch.context() as patched:
        patched.setattr(hpo_data, "open_dataset", train_split_only)
        search(data_dir, trials=2, epochs=1)
        assert hpo("train", "--val-size", VAL_SIZE, "--hidden", "16", "--epochs", 1, *common)[0] == 0
        assert hpo("reproduce", "--trial", 0, *common)[0] == 0
        assert hpo("baselines", "--only", "knn", "--data-dir", data_dir)[0] == 0
        for args in (["best"], ["trials"], ["studies"], ["report"], ["check"]):
            assert hpo(*args)[0] == 0, args
        code, _, err = hpo("best", "--evaluate-test", *common)
        assert code == 1 and "the test split was read" in err  # the guard does catch a reader
    assert link.lockbox_records(open_study("s")) == []
    assert hpo("best", "--evaluate-test", *common)[0] == 0


def test_one_split_one_lockbox_across_studies(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1, study="a")
    search(data_dir, trials=1, study="b")  # another study, the same split
    assert hpo("best", "--study", "a", "--evaluate-test", "--data-dir", data_dir)[0] == 0
    code, out, err = hpo("best", "--study", "b", "--evaluate-test", "--data-dir", data_dir)
    assert_one_line_error(code, out, err, "(the same split as 'a') was already used", "--force")
    assert "never by this study, but 1 time(s) by another study" in " ".join(out.split())
    rows = {line.split()[0]: line for line in hpo("studies")[1].splitlines() if line.strip()[:1] in "ab"}
    assert rows["a"].rstrip().endswith("1") and rows["b"].rstrip().endswith("0 (1 on its split)")
    code, out, _ = hpo("best", "--study", "b", "--evaluate-test", "--force", "--data-dir", data_dir)
    assert code == 0 and "test-set uses 1" in out
    assert link.lockbox_records(open_study("b"))[0]["forced"] is True


def test_an_unfinished_study_is_not_evaluated_without_force(searched: Path) -> None:
    open_study("s").set_attr(link.TARGET, 5)  # as if the search stopped at 2/5
    code, out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert_one_line_error(code, out, err, "is not done (0 trial(s) RUNNING, 2/5 finished)", "--force")
    code, out, _ = hpo("best", "--evaluate-test", "--force", "--data-dir", searched)
    assert code == 0 and "test-set uses 1" in out
    timed = open_study("s")
    assert timed.attr(link.LAST_STOP) == "target"
    timed.set_attr(link.LAST_STOP, "timeout")  # a search that ran out of its --timeout is done
    assert "is not done" not in hpo("best", "--evaluate-test", "--data-dir", searched)[2]
    code, out, _ = hpo("predict", "--top", 1, *_png(searched))
    assert code == 0 and "test accuracy" in out.splitlines()[-1]


def _png(data_dir: Path) -> list[str]:
    from PIL import Image

    raw = (data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()[16 : 16 + 784]
    Image.frombytes("L", (28, 28), raw).save("digit.png")
    return ["digit.png"]


def test_a_copied_project_never_writes_into_the_original(
    searched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `cp -a w0 x6`, a test look in x6 wrote its confusion matrix into w0's run folder while
    w0's store said the test set was never used: MLflow keeps absolute artifact locations."""
    import shutil

    original = Path.cwd()
    shutil.copytree(original, tmp_path / "copy", symlinks=True)
    monkeypatch.chdir(tmp_path / "copy")
    before = sorted(p.name for p in original.rglob("*.png"))
    code, out, err = hpo("best", "--evaluate-test", "--data-dir", searched)
    assert_one_line_error(code, out, err, "the project was copied or moved from there", "Moving a project")
    assert sorted(p.name for p in original.rglob("*.png")) == before
    assert open_study("s").attr(link.TEST_EVALUATIONS) is None  # no look was taken in the copy
