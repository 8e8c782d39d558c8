"""`hpo report` and the figures it writes."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from hpo import link
from hpo.mlflow_store import MlflowStore
from hpo.optuna_store import load_study, open_storage
from tests.helpers import hpo

STORE = "sqlite:///studies/hpo.db"


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
    parent = load_study(open_storage(STORE), "s").attr(link.PARENT_RUN_ID)
    assert len(MlflowStore().client.list_artifacts(parent, "report")) == 4
