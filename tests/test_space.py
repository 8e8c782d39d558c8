"""The search space: TOML parsing and validation, sampling, and rebuilding a config from params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpo.config import OPTIMIZERS
from hpo.errors import ConfigError
from hpo.space import (
    DEFAULT_SPACE,
    Choice,
    Range,
    config_from_params,
    parse_space,
    restrict_family,
    sample,
    space_to_json,
)
from tests.helpers import assert_one_line_error, hpo


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("colour = ['red']", "unknown parameter 'colour'"),
        ("lr = { low = 0.1, high = 0.01 }", "empty range"),
        ("optimizer = []", "empty list"),
        ("lr = { low = 0, high = 0.1, log = true }", "low must be above 0"),
        ("activation = ['relu', 'swish']", "activation cannot be 'swish'"),
        ("family = { low = 1, high = 2 }", "categorical"),
        ("lr = [", "not valid TOML"),
    ],
)
def test_space_file_validation(workdir: Path, data_dir: Path, text: str, needle: str) -> None:
    Path("space.toml").write_text(text)
    code, out, err = hpo("search", "--space", "space.toml", "--data-dir", data_dir, "--trials", 1)
    assert_one_line_error(code, out, err, needle)


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


def test_parse_space_overlays_and_types_values() -> None:
    space = parse_space({"lr": {"low": 1e-3, "high": 0.1}, "activation": "gelu", "batch_size": [64, 128]})
    assert space["lr"] == Range(1e-3, 0.1, log=True)  # log comes from the default
    assert space["activation"] == Choice(("gelu",)) and space["batch_size"] == Choice((64, 128))
    assert space["mlp_layers"] == DEFAULT_SPACE["mlp_layers"]
    with pytest.raises(ConfigError, match="takes integers"):
        parse_space({"mlp_layers": {"low": 1.5, "high": 3}})
    with pytest.raises(ConfigError, match=r"outside \[0, 1\)"):
        parse_space({"dropout": [1.5]})


def test_restrict_family_and_json_form() -> None:
    assert restrict_family(DEFAULT_SPACE, "cnn")["family"] == Choice(("cnn",))
    assert restrict_family(DEFAULT_SPACE, "any") is DEFAULT_SPACE
    with pytest.raises(ConfigError, match="excluded by the space file"):
        restrict_family(parse_space({"family": ["mlp"]}), "cnn")
    as_json = space_to_json(DEFAULT_SPACE)
    assert as_json["lr"] == {"low": 1e-4, "high": 0.3, "log": True, "integer": False}
    assert as_json["optimizer"] == {"choices": list(OPTIMIZERS)}
