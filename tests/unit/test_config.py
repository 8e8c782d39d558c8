"""Config values: one spelling per hyperparameter, and params named as the config fields."""

from __future__ import annotations

from dataclasses import fields

import typer.main

from hpo.cli import app
from hpo.config import DataConfig, ModelConfig, OptimConfig, TrainConfig, as_params
from hpo.search.space import DEFAULT_SPACE
from hpo.spellings import SPELLINGS


def train_flags() -> set[str]:
    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in param.opts}


def test_every_spelling_names_a_field_a_flag_and_space_keys() -> None:
    names = {f.name for cls in (ModelConfig, OptimConfig, TrainConfig) for f in fields(cls)}
    flags = train_flags()
    for name, (flag, keys) in SPELLINGS.items():
        assert name in names, name
        assert flag in flags, flag
        assert flag.removeprefix("--").replace("-", "_") in (name, "model"), flag  # --model: family
        assert set(keys) <= set(DEFAULT_SPACE), keys
    searched = {k for _, keys in SPELLINGS.values() for k in keys}
    assert searched == set(DEFAULT_SPACE)  # every space key maps to a hyperparameter


def test_as_params_names_params_as_fields() -> None:
    params = as_params(DataConfig(), ModelConfig(hidden=(300, 100)), OptimConfig(lr=0.1), TrainConfig())
    assert params["hidden"] == "300,100" and params["lr"] == "0.1" and params["epochs"] == "10"
    assert params["dataset"] == "mnist" and params["batch_norm"] == "False"
    expected = {f.name for cls in (DataConfig, ModelConfig, OptimConfig, TrainConfig) for f in fields(cls)}
    assert set(params) == expected
