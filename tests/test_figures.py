"""`hpo report` and the figures it writes."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_parallel_axes_say_what_their_positions_mean() -> None:
    from types import SimpleNamespace

    from hpo.figures import _axis

    rows = [
        SimpleNamespace(params={"opt": o, "lr": lr})
        for o, lr in (("sgd", 0.1), ("adam", 1e-4), ("sgd", 1e-3))
    ]
    positions, ticks = _axis(rows, "opt")
    assert positions == [1.0, 0.0, 1.0] and ticks == [(0.0, "adam"), (1.0, "sgd")]
    positions, ticks = _axis(rows, "lr")  # a 1000x range: log scale, labelled with real values
    assert positions == pytest.approx([1.0, 0.0, 1 / 3]) and ticks[0] == (0.0, "0.0001")
    assert ticks[1] == (0.5, "0.00316 (log)") and ticks[2] == (1.0, "0.1")
