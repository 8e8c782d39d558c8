"""`hpo baselines`: classical models on the study's split, logged beside its trials."""

from __future__ import annotations

from pathlib import Path

from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from tests.helpers import assert_one_line_error, hpo
from tests.synthetic import VAL_SIZE


def test_baselines_share_the_study_split_and_show_in_best(searched: Path) -> None:
    code, out, err = hpo("baselines", "--data-dir", searched, "--only", "logistic,knn")
    assert code == 0, out + err
    assert "Baselines in experiment 's'" in out and "logistic" in out and "knn" in out
    store = MlflowStore()
    runs = store.runs(store.experiment("s"), where=f"tags.{link.ROLE} = '{link.ROLE_BASELINE}'")
    assert sorted(r.name for r in runs) == ["baseline-knn", "baseline-logistic"]
    for run in runs:
        assert run.status == "FINISHED" and run.metrics["val_accuracy"] > 0.5 and "fit_seconds" in run.metrics
        assert run.params["val_size"] == str(VAL_SIZE) and run.tags["split_fingerprint"]
    code, out, _ = hpo("best")
    assert code == 0 and "best baseline" in out and "points above it" in " ".join(out.split())
    code, out, _ = hpo("report", "--out", "plots")
    assert code == 0 and "vs best baseline" in out


def test_baselines_without_a_study_and_bad_names(workdir: Path, data_dir: Path) -> None:
    code, out, err = hpo("baselines", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--only", "knn")
    assert code == 0 and "Baselines in experiment 'mnist-baselines'" in out, out + err
    code, out, err = hpo("baselines", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--only", "svm")
    assert_one_line_error(code, out, err, "unknown baseline 'svm'")


def test_each_baseline_says_when_it_is_done(workdir: Path, data_dir: Path) -> None:
    """Not on a terminal, `hpo baselines` printed nothing for minutes until its table: now a line
    before the first fit and one as each finishes, in order."""
    args = ["baselines", "--data-dir", data_dir, "--val-size", VAL_SIZE, "--only", "logistic,knn"]
    code, out, err = hpo(*args)
    assert code == 0, out + err
    lines = out.splitlines()
    start = lines.index("Fitting logistic, knn on 1,000 training images, one after another")
    assert lines[start + 1].startswith("logistic: validation accuracy ") and " s" in lines[start + 1]
    assert lines[start + 2].startswith("knn: validation accuracy ")
