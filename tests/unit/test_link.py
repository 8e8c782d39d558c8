"""The link between the stores and `stores.spec`: keys spelled once, StudySpec round trips and comparisons."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from hpo.config import DataConfig
from hpo.core.data import Normalization, Split, TrainValData
from hpo.core.datasets import DATASETS
from hpo.stores import link
from hpo.stores.spec import StudySpec, read_spec, write_spec

PACKAGE = Path(__file__).resolve().parents[2] / "hpo"


def spec(**changes: Any) -> StudySpec:
    split = Split(x=torch.zeros(5000, 1, 28, 28), y=torch.zeros(5000, dtype=torch.int64))
    data = TrainValData(
        train=split,
        val=split,
        normalization=Normalization(0.1, 0.3),
        fingerprint="f" * 16,
        spec=DATASETS["mnist"],
    )
    base = StudySpec.new(
        data_cfg=DataConfig(val_size=5000, split_seed=3), data=data, epochs=10, space={"lr": 1}
    )
    return StudySpec(**{**base.to_attr(), **changes})


@pytest.mark.parametrize(
    "key",
    [
        link.RUN_ID,
        link.PARENT_RUN_ID,
        link.TEST_EVALUATIONS,
        link.SPEC,
        link.FAIL_REASON,
        link.VAL_ACCURACY,
        link.BEST_EPOCH,
        link.SAMPLER_SEED,
        link.MODEL_LOG_ERROR,
    ],
)
def test_link_keys_are_spelled_once_in_the_package(key: str) -> None:
    quoted = re.compile(rf"[\"']{re.escape(key)}[\"']")
    places = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py") for _ in quoted.findall(p.read_text())]
    assert places == [Path("stores/link.py")], places


def test_spec_round_trips_through_the_study_attribute() -> None:
    original = spec()
    assert StudySpec.from_attr(original.to_attr()) == original
    assert original.data_config(data_dir="d") == DataConfig(data_dir="d", val_size=5000, split_seed=3)
    # an attribute written by an older hpo with an extra key still reads
    assert StudySpec.from_attr({**original.to_attr(), "retired": 1}) == original


def test_spec_mismatch_names_the_first_incomparable_setting() -> None:
    assert spec().mismatch(spec(created="later", hpo_version="9.9")) is None  # provenance only
    assert spec().mismatch(spec(epochs=20)) == ("epochs", 10, 20)
    assert spec().mismatch(spec(space={"lr": 2})) == ("space", {"lr": 1}, {"lr": 2})


class Attrs:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def attr(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set_attr(self, key: str, value: Any) -> None:
        self.values[key] = value


def test_typed_accessors() -> None:
    study = Attrs()
    assert read_spec(study) is None and link.parent_run_id(study) == ""
    assert link.lockbox_records(study) == []
    write_spec(study, spec())
    assert read_spec(study) == spec(created=read_spec(study).created)  # type: ignore[union-attr]
    study.set_attr(link.PARENT_RUN_ID, "p1")
    assert link.parent_run_id(study) == "p1"
    assert link.trial_run_name(7) == "trial-0007"


def test_trial_states_are_compared_through_link_only() -> None:
    """No bare Optuna state name outside link.py: a comparison goes through link.COMPLETE & co."""
    bare = re.compile(r"[\"'](COMPLETE|PRUNED|FAIL|RUNNING|WAITING)[\"']")
    places = sorted(
        {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if bare.search(p.read_text())}
    )
    assert places == ["stores/link.py"], places
