"""The search space's vocabulary, shared by the model families (`hpo.families`) and the search
(`hpo.search.space`): a parameter is a `Choice` among values or a `Range` of numbers, and a space
maps each parameter's name to one of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Choice:
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    integer: bool = False


Spec = Choice | Range
Space = dict[str, Spec]
# What a family's sampler asks for: (space key, name the trial records it under, e.g. the key with
# a layer's suffix "_0"; None: the key itself) -> the value drawn.
Suggest = Callable[[str, "str | None"], Any]


def most(spec: Spec) -> Any:
    """The largest value a parameter can take."""
    return spec.high if isinstance(spec, Range) else max(spec.choices)
