"""`Workspace`: both stores behind one handle, each opened on first use."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.errors import CheckpointError, StudyError
from hpo.stores import link
from hpo.stores.workspace import Workspace
from tests.helpers import search


def test_study_is_picked_by_name_or_alone(workdir: Path, data_dir: Path) -> None:
    with pytest.raises(StudyError, match="no study store at"):
        Workspace().study(None)
    ws = Workspace(create=True)
    with pytest.raises(StudyError, match="no studies yet"):
        ws.study(None)
    search(data_dir, trials=1, study="a")
    assert ws.study(None).name == "a"
    search(data_dir, trials=1, study="b")
    with pytest.raises(StudyError, match=r"several studies \(a, b\): choose one with --study"):
        ws.study(None)
    assert ws.study("b").name == "b"


def test_summaries_best_and_model(searched: Path) -> None:
    ws = Workspace()
    (summary,) = ws.summaries()
    assert summary.name == "s" and summary.counts.finished == 2 and summary.test_uses == 0
    info = ws.best("s")
    assert info.spec is not None and info.spec.dataset == "mnist"
    assert info.run_id == link.run_id(info.trial) and info.checkpoint_uri.endswith("/checkpoint")
    assert summary.best == info.trial.value
    loaded = ws.load_model(info.run_id)
    assert loaded.meta["fingerprint"] == info.spec.fingerprint
    with pytest.raises(CheckpointError, match="no MLflow run id"):
        ws.load_model("")


def test_study_commands_never_open_mlflow(workdir: Path, data_dir: Path) -> None:
    search(data_dir, trials=1)
    ws = Workspace(tracking_uri="sqlite:///does/not/matter.db")
    assert [s.name for s in ws.summaries()] == ["s"] and ws.study("s").rows()
    assert "mlflow" not in ws.__dict__  # cached_property never evaluated
