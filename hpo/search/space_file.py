"""Space files: a TOML file that narrows or changes the default search space without code
(`--space space.toml`), validated entry by entry, e.g.:

    lr_sgd = { low = 1e-3, high = 0.1, log = true }
    optimizer = ["adam", "sgd"]       # a list: the choices
    activation = "relu"                # a scalar: fixed
    [mlp_width]
    low = 64
    high = 512

`lr` sets both learning-rate ranges (`lr_sgd` and `lr_adaptive`), as space files written before the
split did.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hpo.config import ACTIVATIONS, AUGMENTS, OPTIMIZERS, SCHEDULES
from hpo.errors import ConfigError
from hpo.families import CONVS, FAMILY_NAMES, HEADS, KERNEL_SIZES
from hpo.search.space import DEFAULT_SPACE, Choice, Range, Space, Spec

# Bounds a value must respect whatever the space file says (inclusive low, exclusive high).
_BOUNDS: dict[str, tuple[float, float]] = {
    "mlp_layers": (1, 7),
    "mlp_width": (1, 65537),
    "cnn_blocks": (1, 5),
    "cnn_convs": (1, 4),
    "cnn_channels": (1, 1025),
    "cnn_fc_width": (0, 65537),
    "res_stages": (1, 5),
    "res_width": (1, 1025),
    "res_blocks": (1, 4),
    "dropout": (0, 1),
    "momentum": (0, 1),
    "lr_sgd": (1e-12, 1e6),
    "lr_adaptive": (1e-12, 1e6),
    "weight_decay": (0, 1),
    "gamma": (1e-6, 1.000001),
    "batch_size": (2, 65537),
    "label_smoothing": (0, 1),
}
_ALLOWED: dict[str, tuple[Any, ...]] = {
    "family": FAMILY_NAMES,
    "activation": ACTIVATIONS,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "cnn_kernel": KERNEL_SIZES,
    "cnn_head": HEADS,
    "cnn_conv": CONVS,
    "batch_norm": (False, True),
    "augment": AUGMENTS,
}


def _check_value(name: str, value: Any) -> None:
    if name in _ALLOWED and value not in _ALLOWED[name]:
        allowed = ", ".join(str(a) for a in _ALLOWED[name])
        raise ConfigError(f"space: {name} cannot be {value!r}; allowed: {allowed}")
    if name in _BOUNDS:
        low, high = _BOUNDS[name]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not (low <= value < high) or not math.isfinite(value):
            raise ConfigError(f"space: {name} value {value!r} is outside [{low}, {high})")


def _parse_spec(name: str, raw: Any, default: Spec) -> Spec:
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"space: {name} has an empty list of choices")
        spec: Spec = Choice(tuple(raw))
    elif isinstance(raw, dict):
        spec = _parse_table(name, raw, default)
    else:
        spec = Choice((raw,))
    values = spec.choices if isinstance(spec, Choice) else (spec.low, spec.high)
    for value in values:
        _check_value(name, value)
    return spec


def _parse_table(name: str, raw: dict[str, Any], default: Spec) -> Spec:
    if "choices" in raw:
        extra = set(raw) - {"choices"}
        if extra:
            raise ConfigError(f"space: {name} mixes choices with {sorted(extra)}")
        return _parse_spec(name, list(raw["choices"]), default)
    if not isinstance(default, Range):
        raise ConfigError(f"space: {name} is categorical; give a list of choices, not a range")
    unknown = set(raw) - {"low", "high", "log"}
    if unknown or not {"low", "high"} <= set(raw):
        raise ConfigError(f"space: {name} needs low and high (and optionally log); got {sorted(raw)}")
    low, high, log = raw["low"], raw["high"], bool(raw.get("log", default.log))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise ConfigError(f"space: {name} low and high must be numbers")
    if low > high:
        raise ConfigError(f"space: {name} has an empty range: low {low} > high {high}")
    if log and low <= 0:
        raise ConfigError(f"space: {name} is log-scaled, so low must be above 0; got {low}")
    if default.integer and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"space: {name} takes integers; got {low}..{high}")
    return Range(low=low, high=high, log=log, integer=default.integer)


def parse_space(raw: dict[str, Any], *, base: Space | None = None) -> Space:
    """Overlay a parsed TOML mapping onto `base` (the default space), validating every entry."""
    space = dict(base or DEFAULT_SPACE)
    if "lr" in raw:  # one range for every optimizer
        raw = {"lr_sgd": raw["lr"], "lr_adaptive": raw["lr"], **{k: v for k, v in raw.items() if k != "lr"}}
    for name, value in raw.items():
        if name not in DEFAULT_SPACE:
            known = ", ".join((*DEFAULT_SPACE, "lr"))
            raise ConfigError(f"space: unknown parameter {name!r}; known parameters: {known}")
        space[name] = _parse_spec(name, value, DEFAULT_SPACE[name])
    return space


def load_space_file(path: Path, *, base: Space) -> Space:
    """A space file overlaid on `base`: the search's default space (`space.default_space`)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"space file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read space file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"space file {path} is not valid TOML: {exc}") from None
    return parse_space(raw, base=base)
