"""The search space: sampling, replaying recorded params, restricting, its JSON form."""

from __future__ import annotations

from typing import Any

import pytest

from hpo.config import OPTIMIZERS
from hpo.errors import ConfigError
from hpo.space import DEFAULT_SPACE, Choice, config_from_params, restrict_family, sample, space_to_json
from hpo.space_file import parse_space


class FakeTrial:
    """Records suggest_* calls and answers with the lowest choice / the low end of a range."""

    def __init__(self) -> None:
        self.asked: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.asked[name] = choices[-1]
        return choices[-1]

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        self.asked[name] = high
        return high

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.asked[name] = low
        return low


def test_sample_draws_conditional_parameters_only_where_they_apply() -> None:
    mlp = restrict_family(parse_space({"optimizer": ["adam"], "schedule": ["cosine"]}), "mlp")
    trial = FakeTrial()
    cfg = sample(trial, mlp)
    assert cfg.model.family == "mlp" and len(cfg.model.hidden) == 3  # mlp_layers high = 3
    assert {"mlp_width_0", "mlp_width_1", "mlp_width_2"} <= set(trial.asked)
    assert "momentum" not in trial.asked and "gamma" not in trial.asked  # adam, no exponential
    assert not any(k.startswith("cnn_") for k in trial.asked)
    cnn = restrict_family(parse_space({"optimizer": ["sgd"], "schedule": ["exponential"]}), "cnn")
    trial = FakeTrial()
    cfg = sample(trial, cnn)
    assert cfg.model.family == "cnn" and cfg.model.padding == "same" and len(cfg.model.channels) == 3
    assert trial.asked["momentum"] == 0.0 and cfg.optim.gamma == DEFAULT_SPACE["gamma"].low  # type: ignore[union-attr]


def test_config_from_params_replays_what_sample_drew() -> None:
    trial = FakeTrial()
    drawn = sample(trial, restrict_family(DEFAULT_SPACE, "cnn"))
    assert config_from_params(trial.asked) == drawn
    assert config_from_params({"family": "mlp", "activation": "relu"}) is None  # cut short


def test_restrict_family_and_json_form() -> None:
    assert restrict_family(DEFAULT_SPACE, "cnn")["family"] == Choice(("cnn",))
    assert restrict_family(DEFAULT_SPACE, "any") is DEFAULT_SPACE
    with pytest.raises(ConfigError, match="excluded by the space file"):
        restrict_family(parse_space({"family": ["mlp"]}), "cnn")
    as_json = space_to_json(DEFAULT_SPACE)
    assert as_json["lr"] == {"low": 1e-4, "high": 0.3, "log": True, "integer": False}
    assert as_json["optimizer"] == {"choices": list(OPTIMIZERS)}
