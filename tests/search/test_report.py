"""`hpo report`: the PNG figures and the one-file HTML page, both logged to the study's parent run."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from tests.helpers import hpo, open_study


def test_report_writes_and_logs_plots(searched: Path) -> None:
    code, out, err = hpo("report", "--out", "plots")
    assert code == 0, out + err
    names = sorted(p.name for p in Path("plots").iterdir())
    assert names == [
        "optimization_history.png",
        "parallel_coordinates.png",
        "param_importances.png",
        "validation_curves.png",
    ]
    for name in names:
        assert Image.open(Path("plots") / name).size[0] > 300
    parent = open_study("s").attr(link.PARENT_RUN_ID)
    assert len(MlflowStore().client.list_artifacts(parent, "report")) == 4


def test_html_report_is_one_self_contained_page_with_the_lockbox_and_baselines(searched: Path) -> None:
    data = ["--data-dir", searched, "--device", "cpu"]
    assert hpo("best", "--evaluate-test", *data)[0] == 0
    assert hpo("baselines", "--data-dir", searched, "--only", "knn")[0] == 0
    code, out, err = hpo("report", "--html", "--out", "r")
    assert code == 0, out + err
    assert "wrote r/report.html" in out
    page = Path("r/report.html").read_text()
    assert 'src="http' not in page and 'src="file' not in page and "<script" not in page  # one file
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]+)"', page)
    assert images == [
        "Optimization history", "Hyperparameter importances", "Parallel coordinates", "Validation curves",
        "Test confusion matrix", "Misclassified test images",
    ]  # fmt: skip
    study = open_study("s")
    (record,) = link.lockbox_records(study)
    assert f"{100 * record['accuracy']:.2f}%" in page and "Per class (hardest first)" in page
    assert "<td>knn</td>" in page and "Top 10 trials" in page and "Search space" in page
    parent = study.attr(link.PARENT_RUN_ID)
    logged = {a.path for a in MlflowStore().client.list_artifacts(parent, "report")}
    assert "report/report.html" in logged


def test_html_report_before_any_test_look_says_so(searched: Path) -> None:
    assert hpo("report", "--html", "--out", "r")[0] == 0
    page = Path("r/report.html").read_text()
    assert "The test set has not been used" in page and "No classical baselines yet" in page


def test_an_mlp_only_studys_space_lists_no_cnn_parameter(searched: Path) -> None:
    code, out, err = hpo("report", "--out", "plots", "--html")
    assert code == 0, out + err
    page = Path("plots/report.html").read_text()
    space = page.split("Search space", 1)[1]
    assert "mlp_width" in space and "cnn_" not in space
