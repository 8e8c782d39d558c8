"""Space files: TOML parsing and validation, through the CLI and directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.errors import ConfigError
from hpo.search.space import DEFAULT_SPACE, Choice, Range
from hpo.search.space_file import parse_space
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


def test_parse_space_overlays_and_types_values() -> None:
    space = parse_space({"lr": {"low": 1e-3, "high": 0.1}, "activation": "gelu", "batch_size": [64, 128]})
    # `lr` sets both families' ranges; log comes from the default
    assert space["lr_sgd"] == space["lr_adaptive"] == Range(1e-3, 0.1, log=True)
    assert space["activation"] == Choice(("gelu",)) and space["batch_size"] == Choice((64, 128))
    assert space["mlp_layers"] == DEFAULT_SPACE["mlp_layers"]
    with pytest.raises(ConfigError, match="takes integers"):
        parse_space({"mlp_layers": {"low": 1.5, "high": 3}})
    with pytest.raises(ConfigError, match=r"outside \[0, 1\)"):
        parse_space({"dropout": [1.5]})
