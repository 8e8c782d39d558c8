"""The search space: what each trial may try, and the only caller of `trial.suggest_*`.

A space maps parameter names to a `Choice` or a `Range`. The default can be narrowed or changed
without code by a TOML file (`--space space.toml`), e.g.:

    lr = { low = 1e-3, high = 0.1, log = true }
    optimizer = ["adam", "sgd"]       # a list: the choices
    activation = "relu"                # a scalar: fixed
    [mlp_width]
    low = 64
    high = 512

Conditional parameters (mlp_* only for MLPs, sgd momentum only for sgd/rmsprop...) are sampled
only when they apply; TPE models them jointly with `multivariate=True, group=True`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hpo.config import (
    ACTIVATIONS,
    AUGMENTS,
    FAMILIES,
    KERNEL_SIZES,
    OPTIMIZERS,
    SCHEDULES,
    ModelConfig,
    OptimConfig,
)
from hpo.errors import ConfigError


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

BATCH_SIZES = tuple(2**k for k in range(5, 12))  # 32 .. 2048

DEFAULT_SPACE: Space = {
    "family": Choice(FAMILIES),
    "mlp_layers": Range(1, 3, integer=True),
    "mlp_width": Range(32, 1024, log=True, integer=True),  # per layer: mlp_width_0, ...
    "cnn_blocks": Range(1, 3, integer=True),
    "cnn_channels": Choice((16, 32, 64)),  # per block: cnn_channels_0, ...
    "cnn_kernel": Choice(KERNEL_SIZES),
    "cnn_fc_width": Choice((0, 64, 128, 256)),
    # tanh and sigmoid stay available through --space; by default they spent early trials at
    # chance level (deep sigmoid MLPs barely train in a few epochs).
    "activation": Choice(("relu", "leaky_relu", "elu", "gelu", "silu")),
    "dropout": Range(0.0, 0.5),
    "batch_norm": Choice((False, True)),
    "optimizer": Choice(OPTIMIZERS),
    "momentum": Range(0.0, 0.99),  # sgd and rmsprop
    "lr": Range(1e-4, 0.3, log=True),
    "weight_decay": Range(1e-7, 1e-2, log=True),
    "schedule": Choice(SCHEDULES),
    "gamma": Range(0.5, 0.99),  # exponential schedule
    "batch_size": Choice(BATCH_SIZES),
    "augment": Choice(AUGMENTS),
    "label_smoothing": Choice((0.0, 0.1)),
}

# Bounds a value must respect whatever the space file says (inclusive low, exclusive high).
_BOUNDS: dict[str, tuple[float, float]] = {
    "mlp_layers": (1, 7),
    "mlp_width": (1, 65537),
    "cnn_blocks": (1, 5),
    "cnn_channels": (1, 1025),
    "cnn_fc_width": (0, 65537),
    "dropout": (0, 1),
    "momentum": (0, 1),
    "lr": (1e-12, 1e6),
    "weight_decay": (0, 1),
    "gamma": (1e-6, 1.000001),
    "batch_size": (2, 65537),
    "label_smoothing": (0, 1),
}
_ALLOWED: dict[str, tuple[Any, ...]] = {
    "family": FAMILIES,
    "activation": ACTIVATIONS,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "cnn_kernel": KERNEL_SIZES,
    "batch_norm": (False, True),
    "augment": AUGMENTS,
}


class TrialLike(Protocol):
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = ...) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = ...) -> float: ...


@dataclass(frozen=True)
class TrialConfig:
    model: ModelConfig
    optim: OptimConfig
    batch_size: int
    augment: str = "none"
    label_smoothing: float = 0.0


def _suggest(trial: TrialLike, name: str, spec: Spec, key: str | None = None) -> Any:
    key = key or name
    if isinstance(spec, Choice):
        return trial.suggest_categorical(key, list(spec.choices))
    if spec.integer:
        return trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, log=spec.log)


def _sample_model(trial: TrialLike, space: Space) -> ModelConfig:
    family = _suggest(trial, "family", space["family"])
    common: dict[str, Any] = {
        "family": family,
        "activation": _suggest(trial, "activation", space["activation"]),
        "dropout": _suggest(trial, "dropout", space["dropout"]),
        "batch_norm": _suggest(trial, "batch_norm", space["batch_norm"]),
    }
    if family == "mlp":
        layers = _suggest(trial, "mlp_layers", space["mlp_layers"])
        widths = [_suggest(trial, "mlp_width", space["mlp_width"], f"mlp_width_{i}") for i in range(layers)]
        return ModelConfig(hidden=tuple(widths), **common)
    blocks = _suggest(trial, "cnn_blocks", space["cnn_blocks"])
    channels = [
        _suggest(trial, "cnn_channels", space["cnn_channels"], f"cnn_channels_{i}") for i in range(blocks)
    ]
    return ModelConfig(
        channels=tuple(channels),
        kernel_size=_suggest(trial, "cnn_kernel", space["cnn_kernel"]),
        padding="same",
        fc_width=_suggest(trial, "cnn_fc_width", space["cnn_fc_width"]),
        **common,
    )


def sample(trial: TrialLike, space: Space) -> TrialConfig:
    """Draw one configuration; conditional parameters only where they apply."""
    model = _sample_model(trial, space)
    optimizer = _suggest(trial, "optimizer", space["optimizer"])
    momentum = _suggest(trial, "momentum", space["momentum"]) if optimizer in ("sgd", "rmsprop") else 0.0
    schedule = _suggest(trial, "schedule", space["schedule"])
    gamma = {"gamma": _suggest(trial, "gamma", space["gamma"])} if schedule == "exponential" else {}
    optim = OptimConfig(
        optimizer=optimizer,
        lr=_suggest(trial, "lr", space["lr"]),
        momentum=momentum,
        weight_decay=_suggest(trial, "weight_decay", space["weight_decay"]),
        schedule=schedule,
        **gamma,  # OptimConfig's default otherwise: unused, but recorded
    )
    return TrialConfig(
        model=model,
        optim=optim,
        batch_size=_suggest(trial, "batch_size", space["batch_size"]),
        augment=_suggest(trial, "augment", space["augment"]),
        label_smoothing=_suggest(trial, "label_smoothing", space["label_smoothing"]),
    )


# Parameters added to the space after studies were made with it: what their trials trained.
_INTRODUCED = {"augment": "none", "label_smoothing": 0.0}


class _Replay:
    """A TrialLike that answers each suggest_* with the value a trial recorded."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = {**_INTRODUCED, **params}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        return int(self.params[name])

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return float(self.params[name])


def config_from_params(params: dict[str, Any]) -> TrialConfig | None:
    """The configuration a trial trained, rebuilt from its recorded parameters (Optuna's keys) by
    replaying `sample`; None when the trial stopped before its parameters were all drawn."""
    try:
        return sample(_Replay(params), DEFAULT_SPACE)  # replay reads only the keys, not the ranges
    except (KeyError, ConfigError):
        return None


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
    """Overlay a parsed TOML mapping onto the default space, validating every entry."""
    space = dict(base or DEFAULT_SPACE)
    for name, value in raw.items():
        if name not in DEFAULT_SPACE:
            known = ", ".join(DEFAULT_SPACE)
            raise ConfigError(f"space: unknown parameter {name!r}; known parameters: {known}")
        space[name] = _parse_spec(name, value, DEFAULT_SPACE[name])
    return space


def load_space_file(path: Path) -> Space:
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
    return parse_space(raw)


def restrict_family(space: Space, model: str) -> Space:
    """`--model mlp|cnn` fixes the family; `any` keeps the space's choices."""
    if model == "any":
        return space
    if model not in FAMILIES:
        raise ConfigError(f"unknown model {model!r}: choose mlp, cnn or any")
    family = space["family"]
    if isinstance(family, Choice) and model not in family.choices:
        raise ConfigError(f"--model {model} is excluded by the space file's family choices")
    return {**space, "family": Choice((model,))}


def space_to_json(space: Space) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, Choice):
            out[name] = {"choices": list(spec.choices)}
        else:
            out[name] = {"low": spec.low, "high": spec.high, "log": spec.log, "integer": spec.integer}
    return out
