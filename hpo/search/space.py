"""The search space: what each trial may try, and the only caller of `trial.suggest_*`.

A space maps parameter names to a `Choice` or a `Range`; `hpo.search.space_file` reads a TOML file that
narrows or changes the default. Conditional parameters (mlp_* only for MLPs, momentum only for
sgd/rmsprop...) are sampled only when they apply; TPE models them jointly with
`multivariate=True, group=True`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from hpo.config import (
    ADAPTIVE_OPTIMIZERS,
    AUGMENTS,
    MNIST_SHAPE,
    OPTIMIZERS,
    SCHEDULES,
    ModelConfig,
    ModelLimits,
    OptimConfig,
)
from hpo.errors import ConfigError
from hpo.families import FAMILIES, FAMILY_NAMES
from hpo.space_types import Choice, Range, Space, Spec

BATCH_SIZES = tuple(2**k for k in range(5, 12))  # 32 .. 2048

# What every family draws: activation, regularization, optimizer, schedule, batch, augmentation.
SHARED_SPACE: Space = {
    # tanh and sigmoid stay available through --space; by default they spent early trials at
    # chance level (deep sigmoid MLPs barely train in a few epochs).
    "activation": Choice(("relu", "leaky_relu", "elu", "gelu", "silu")),
    "dropout": Range(0.0, 0.5),
    "batch_norm": Choice((False, True)),
    "optimizer": Choice(OPTIMIZERS),
    "momentum": Range(0.0, 0.99),  # sgd and rmsprop
    # One learning-rate range per optimizer family: sgd wants 1e-2..1e-1 where adaptive
    # optimizers diverge, and one shared range would waste half of every family's draws.
    "lr_sgd": Range(1e-3, 0.5, log=True),
    "lr_adaptive": Range(1e-4, 1e-2, log=True),  # adam, adamw, rmsprop
    "weight_decay": Range(1e-7, 1e-2, log=True),
    "schedule": Choice(SCHEDULES),
    "gamma": Range(0.5, 0.99),  # exponential schedule
    "batch_size": Choice(BATCH_SIZES),
    "augment": Choice(AUGMENTS),
    "label_smoothing": Choice((0.0, 0.1)),
}
# Every family, each with its own keys (hpo.families), and the shared ones.
DEFAULT_SPACE: Space = {
    "family": Choice(FAMILY_NAMES),
    **{key: spec for family in FAMILIES.values() for key, spec in family.space.items()},
    **SHARED_SPACE,
}
# The space of a search for small or fast models (a size objective, or a --max-* limit): the
# families that have a compact range, in it (its smallest CNN, two blocks of 4 channels and a GAP
# head, has 238 parameters; its smallest MLP, 784-8-10, 6,370). The rest is the default's.
COMPACT_SPACE: Space = {
    **DEFAULT_SPACE,
    "family": Choice(tuple(name for name, family in FAMILIES.items() if family.compact)),
    **{key: spec for family in FAMILIES.values() for key, spec in family.compact.items()},
}
# Families whose epoch costs a CPU more than a short budget can pay for a few trials of: a ResNet
# of the default space takes 38 s to 13 min an MNIST epoch on one Xeon core, against 21 s for the
# 32-64 CNN warm start (benchmarks/RESULTS.md, "Model families").
COSTLY_ON_CPU = ("resnet",)
SHORT_CPU_BUDGET_S = 30 * 60


def default_space(*, objective: str, limits: ModelLimits, short_cpu_budget: bool = False) -> Space:
    """The space a new study draws from without a space file: the compact one when the search is
    for small or fast models (its size is an objective or has a limit), the default otherwise,
    without the families a short budget on a CPU cannot afford (`short_cpu_budget`)."""
    wants_small = objective != "accuracy" or limits != ModelLimits()
    if wants_small:
        return COMPACT_SPACE
    if short_cpu_budget:
        return {**DEFAULT_SPACE, "family": Choice(tuple(f for f in FAMILY_NAMES if f not in COSTLY_ON_CPU))}
    return DEFAULT_SPACE


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


def _sample_model(
    trial: TrialLike, space: Space, *, in_shape: tuple[int, int, int], classes: int
) -> ModelConfig:
    family = _suggest(trial, "family", space["family"])
    common: dict[str, Any] = {
        "family": family,
        "activation": _suggest(trial, "activation", space["activation"]),
        "dropout": _suggest(trial, "dropout", space["dropout"]),
        "batch_norm": _suggest(trial, "batch_norm", space["batch_norm"]),
    }
    section = FAMILIES[family].sample(lambda key, name: _suggest(trial, key, space[key], name))
    return ModelConfig(**common, **section, in_shape=in_shape, classes=classes)


def sample(
    trial: TrialLike, space: Space, *, in_shape: tuple[int, int, int] = MNIST_SHAPE, classes: int = 10
) -> TrialConfig:
    """Draw one configuration for (C, H, W) = `in_shape` images of `classes` classes (MNIST's unless
    told); conditional parameters only where they apply."""
    model = _sample_model(trial, space, in_shape=in_shape, classes=classes)
    optimizer = _suggest(trial, "optimizer", space["optimizer"])
    momentum = _suggest(trial, "momentum", space["momentum"]) if optimizer in ("sgd", "rmsprop") else 0.0
    schedule = _suggest(trial, "schedule", space["schedule"])
    gamma = {"gamma": _suggest(trial, "gamma", space["gamma"])} if schedule == "exponential" else {}
    lr_key = "lr_adaptive" if optimizer in ADAPTIVE_OPTIMIZERS else "lr_sgd"
    optim = OptimConfig(
        optimizer=optimizer,
        lr=_suggest(trial, lr_key, space[lr_key]),
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
_INTRODUCED: dict[str, Any] = {
    "augment": "none",
    "label_smoothing": 0.0,
    "cnn_convs": 1,
    "cnn_head": "flatten",
    "cnn_conv": "full",
}
# Parameters split after studies were made with them: new key -> the key those studies recorded.
_SPLIT = {"lr_sgd": "lr", "lr_adaptive": "lr"}


class _Replay:
    """A TrialLike that answers each suggest_* with the value a trial recorded."""

    def __init__(self, params: dict[str, Any]) -> None:
        legacy = {new: params[old] for new, old in _SPLIT.items() if old in params}
        self.params = {**_INTRODUCED, **legacy, **params}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        return int(self.params[name])

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return float(self.params[name])


def config_from_params(
    params: dict[str, Any], *, in_shape: tuple[int, int, int] = MNIST_SHAPE, classes: int = 10
) -> TrialConfig | None:
    """The configuration a trial trained, rebuilt from its recorded parameters (Optuna's keys) by
    replaying `sample`, for MNIST-shaped data unless told (what a configuration is does not depend
    on it); None when the trial stopped before its parameters were all drawn."""
    try:  # replay reads only the keys, not the ranges
        return sample(_Replay(params), DEFAULT_SPACE, in_shape=in_shape, classes=classes)
    except (KeyError, ConfigError):
        return None


def restrict_family(space: Space, model: str) -> Space:
    """`--model mlp|cnn` fixes the family; `any` keeps the space's choices."""
    if model == "any":
        return space
    if model not in FAMILY_NAMES:
        raise ConfigError(f"unknown model {model!r}: choose {', '.join(FAMILY_NAMES)} or any")
    family = space["family"]
    if isinstance(family, Choice) and model not in family.choices:
        raise ConfigError(f"--model {model} is excluded by the space file's family choices")
    return {**space, "family": Choice((model,))}


def describe(cfg: TrialConfig) -> str:
    """A configuration in one line, e.g. 'mlp 512-128 relu bn | adam lr=0.001 wd=1e-06 cosine |
    bs 128 aug=shift': what `hpo trials` shows and each trial run's MLflow description says."""
    m, o = cfg.model, cfg.optim
    arch = FAMILIES[m.family].describe(m) + f" {m.activation}" + (" bn" if m.batch_norm else "")
    arch += f" drop={_short(m.dropout)}" if m.dropout else ""
    opt = f"{o.optimizer} lr={_short(o.lr)}"
    opt += f" m={_short(o.momentum)}" if o.optimizer in ("sgd", "rmsprop") else ""
    opt += f" wd={_short(o.weight_decay)} {o.schedule}"
    opt += f"({_short(o.gamma)})" if o.schedule == "exponential" else ""
    text = f"{arch} | {opt} | bs {cfg.batch_size}"
    text += f" aug={cfg.augment}" if cfg.augment != "none" else ""
    return text + (f" ls={_short(cfg.label_smoothing)}" if cfg.label_smoothing else "")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def space_to_json(space: Space) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, Choice):
            out[name] = {"choices": list(spec.choices)}
        else:
            out[name] = {"low": spec.low, "high": spec.high, "log": spec.log, "integer": spec.integer}
    return out


def space_from_json(raw: dict[str, Any]) -> Space:
    """The space a study recorded (`space_to_json`), usable by `sample` again: parameters the
    space gained later are fixed to what those trials trained, split ones take the old range."""
    space: Space = {}
    for name, spec in raw.items():
        if "choices" in spec:
            space[name] = Choice(tuple(spec["choices"]))
        else:
            space[name] = Range(spec["low"], spec["high"], log=spec["log"], integer=spec["integer"])
    for new, old in _SPLIT.items():
        if new not in space and old in space:
            space[new] = space[old]
    for name, value in _INTRODUCED.items():
        space.setdefault(name, Choice((value,)))
    return {name: spec for name, spec in space.items() if name in DEFAULT_SPACE}


def stretched(params: dict[str, Any], *, space: Space, schedule: int, epochs: int) -> dict[str, Any]:
    """A configuration's `params` for `epochs` instead of its `schedule` (the --budget's final
    training): an exponential schedule decays as much in all, gamma ** (schedule / epochs) an
    epoch, at most the space's high end (a space whose gamma is a Choice draws no other). Cosine
    and one-cycle follow their epochs already; unstretched, 0.67 an epoch leaves 2% of the rate
    after 10 epochs: a 23-epoch final stood still for 13 (Fashion-MNIST, 20 minutes)."""
    gamma, spec = params.get("gamma"), space.get("gamma")
    if params.get("schedule") != "exponential" or gamma is None or not isinstance(spec, Range):
        return dict(params)
    return {**params, "gamma": min(spec.high, max(float(gamma), float(gamma) ** (schedule / epochs)))}
