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
    CONVS,
    FAMILIES,
    HEADS,
    KERNEL_SIZES,
    OPTIMIZERS,
    SCHEDULES,
    ModelConfig,
    ModelLimits,
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
    "cnn_convs": Range(1, 2, integer=True),  # convs per block, before its 2x2 pool
    "cnn_channels": Choice((16, 32, 64, 128)),  # per block: cnn_channels_0, ...
    "cnn_kernel": Choice(KERNEL_SIZES),
    "cnn_head": Choice(HEADS),
    "cnn_fc_width": Choice((0, 64, 128, 256)),
    "cnn_conv": Choice(("full",)),
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


# The space of a search for small or fast models (a size objective, or a --max-* limit): narrow
# channels, up to 4 blocks of up to 3 convs, depthwise-separable convs and global-average-pool
# heads, the shapes of MNIST's hand-designed 5k-9k parameter nets (e.g. 1->8->16, 1x1 down, pool,
# ->16->32, GAP: ~7k). Its smallest CNN, two blocks of 4 channels and a GAP head, has 238
# parameters; its smallest MLP, 784-8-10, 6,370. The rest (optimizers, schedules, batch sizes,
# augmentation) is the default's.
COMPACT_SPACE: Space = {
    **DEFAULT_SPACE,
    "mlp_layers": Range(1, 2, integer=True),
    "mlp_width": Range(8, 256, log=True, integer=True),
    "cnn_blocks": Range(2, 4, integer=True),
    "cnn_convs": Range(1, 3, integer=True),
    "cnn_channels": Choice((4, 8, 12, 16, 24, 32, 48)),
    "cnn_head": Choice(("gap", "flatten")),
    "cnn_fc_width": Choice((0, 16, 32)),
    "cnn_conv": Choice(CONVS),
}


def default_space(*, objective: str, limits: ModelLimits) -> Space:
    """The space a new study draws from without a space file: the compact one when the search is
    for small or fast models (its size is an objective or has a limit), the default otherwise."""
    wants_small = objective != "accuracy" or limits != ModelLimits()
    return COMPACT_SPACE if wants_small else DEFAULT_SPACE


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
        convs_per_block=_suggest(trial, "cnn_convs", space["cnn_convs"]),
        kernel_size=_suggest(trial, "cnn_kernel", space["cnn_kernel"]),
        padding="same",
        head=_suggest(trial, "cnn_head", space["cnn_head"]),
        conv=_suggest(trial, "cnn_conv", space["cnn_conv"]),
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


def config_from_params(params: dict[str, Any]) -> TrialConfig | None:
    """The configuration a trial trained, rebuilt from its recorded parameters (Optuna's keys) by
    replaying `sample`; None when the trial stopped before its parameters were all drawn."""
    try:
        return sample(_Replay(params), DEFAULT_SPACE)  # replay reads only the keys, not the ranges
    except (KeyError, ConfigError):
        return None


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


def describe(cfg: TrialConfig) -> str:
    """A configuration in one line, e.g. 'mlp 512-128 relu bn | adam lr=0.001 wd=1e-06 cosine |
    bs 128 aug=shift': what `hpo trials` shows and each trial run's MLflow description says."""
    m, o = cfg.model, cfg.optim
    if m.family == "cnn":
        arch = f"cnn {'-'.join(map(str, m.channels))}"
        arch += f"x{m.convs_per_block}" if m.convs_per_block > 1 else ""
        arch += f" k{m.kernel_size}" + (" sep" if m.conv == "separable" else "")
        arch += (" gap" if m.head == "gap" else "") + f" fc{m.fc_width}"
    else:
        arch = "mlp " + "-".join(map(str, m.hidden))
    arch += f" {m.activation}" + (" bn" if m.batch_norm else "")
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
