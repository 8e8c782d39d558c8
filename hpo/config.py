"""Frozen configuration dataclasses and their validation. No I/O happens here: every check is
about values, so a config can be built and validated in a test without touching disk or torch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from hpo.errors import ConfigError
from hpo.families import CONVS, FAMILIES, FAMILY_NAMES, HEADS, KERNEL_SIZES

# The typed vocabularies: a Literal type each, its values as a tuple for checks and CLI choices.
DatasetName = Literal["mnist", "fashion-mnist"]  # the registered datasets (hpo/core/datasets.py)
DATASETS: tuple[DatasetName, ...] = get_args(DatasetName)
Sampler = Literal["tpe", "random", "gp", "cmaes"]
SAMPLERS: tuple[Sampler, ...] = get_args(Sampler)
Pruner = Literal["median", "hyperband", "sha", "none"]
PRUNERS: tuple[Pruner, ...] = get_args(Pruner)
# What a search optimizes: validation accuracy alone, or also (minimized) the model's parameters,
# its batch-1 CPU latency or its FLOPs per image; each known before training.
Objective = Literal["accuracy", "accuracy,params", "accuracy,latency", "accuracy,flops"]
OBJECTIVES: tuple[Objective, ...] = get_args(Objective)
# How training computes: fp32, or bf16 mixed precision (bfloat16 matmuls and convolutions under
# autocast, float32 weights, loss and evaluation); see engine._autocast.
Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("none", "cosine", "onecycle", "exponential")
AUGMENTS = ("none", "shift", "affine")  # see hpo/core/augment.py
PADDINGS = ("same", "valid")
ADAPTIVE_OPTIMIZERS = ("adam", "adamw", "rmsprop")  # they take far smaller learning rates than sgd
MNIST_SHAPE = (1, 28, 28)  # (channels, height, width) of MNIST and Fashion-MNIST


def _choice(name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        options = ", ".join(str(a) for a in allowed)
        raise ConfigError(f"unknown {name} {value!r}: choose one of {options}")


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def parse_int_list(text: str, *, option: str) -> tuple[int, ...]:
    """Parse '300,100' into (300, 100); a clear error names the option on anything else."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"{option} expects comma-separated positive integers like 300,100; got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"{option} expects positive integers like 300,100; got {text!r}")
    return values


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where its files live, and how the validation split is carved. `path` is a
    user's own data (a folder of class folders, or an .npz file) named `dataset`; without it,
    `dataset` is a registered one read from `data_dir`."""

    dataset: str = "mnist"
    data_dir: str = "data"
    val_size: int | None = None  # images held out of the training split; None: a sixth of it
    split_seed: int = 0
    path: str | None = None
    image_size: tuple[int, int] | None = None  # (height, width) a user's images are resized to

    def __post_init__(self) -> None:
        if self.path is None:
            _choice("dataset", self.dataset, DATASETS)
        if self.val_size is not None and self.val_size < 1:
            raise ConfigError(f"--val-size must be at least 1; got {self.val_size}")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ConfigError(f"--image-size must be positive, like 32 or 64x48; got {self.image_size}")

    def val_images(self, n: int) -> int:
        """Validation images out of a training split of `n`: --val-size, or a sixth (MNIST's
        10,000 of 60,000)."""
        return self.val_size if self.val_size is not None else max(1, n // 6)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a model of one family (`hpo.families`): the fields every family reads, then
    each family's section. A CNN block is `convs_per_block` convs then a 2x2 max-pool; `head`
    flattens the last block's maps or averages each channel (gap); `fc_width=0` means those features
    go straight to the output (seed 001's conv 1->10->20, fc 320->10). A ResNet's `channels` are
    its stages' widths, each stage `res_blocks` residual blocks. `in_shape` and `classes` come
    from the data: (C, H, W) in, `classes` logits out."""

    family: str = "mlp"
    hidden: tuple[int, ...] = (300, 100)  # MLP hidden widths
    channels: tuple[int, ...] = (32, 64)  # CNN output channels per conv block; ResNet per stage
    kernel_size: int = 3
    padding: str = "same"
    fc_width: int = 128
    convs_per_block: int = 1
    head: str = "flatten"
    conv: str = "full"  # CONVS; the first conv of a network (one input channel) is always full
    res_blocks: int = 1  # ResNet: residual blocks per stage
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False
    in_shape: tuple[int, int, int] = MNIST_SHAPE  # (channels, height, width) of one image
    classes: int = 10

    def __post_init__(self) -> None:
        _choice("model", self.family, FAMILY_NAMES)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("padding", self.padding, PADDINGS)
        _choice("kernel size", self.kernel_size, KERNEL_SIZES)
        _choice("head", self.head, HEADS)
        _choice("conv", self.conv, CONVS)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1); got {self.dropout}")
        if self.fc_width < 0:
            raise ConfigError(f"--fc-width must be 0 (none) or positive; got {self.fc_width}")
        if len(self.in_shape) != 3 or min(self.in_shape) < 1 or self.classes < 2:
            raise ConfigError(f"a model takes (C, H, W) images into 2 or more classes; got {self.in_shape}")
        FAMILIES[self.family].check(self)


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule. `gamma` is the per-epoch decay of `exponential`."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9  # sgd and rmsprop only
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "none"
    gamma: float = 0.7

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _positive("--lr", self.lr)
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"--momentum must be in [0, 1); got {self.momentum}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"--weight-decay must be >= 0; got {self.weight_decay}")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"--gamma must be in (0, 1]; got {self.gamma}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("--nesterov needs --optimizer sgd and a --momentum above 0")


@dataclass(frozen=True)
class TrainConfig:
    """How long and how a single configuration is trained."""

    epochs: int = 10
    batch_size: int = 128
    seed: int = 0  # weights, dropout, augmentation and batch order all come from it
    device: str = "auto"
    deterministic: bool = False
    augment: str = "none"  # training batches only, on the device
    label_smoothing: float = 0.0  # of the training loss; validation loss stays plain
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1; got {self.epochs}")
        if self.batch_size < 2:
            raise ConfigError(
                f"--batch-size must be at least 2 (a batch of one image cannot train batch norm, and "
                f"single images make a noisy, slow epoch); got {self.batch_size}"
            )
        _choice("augment", self.augment, AUGMENTS)
        _choice("precision", self.precision, PRECISIONS)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"--label-smoothing must be in [0, 1); got {self.label_smoothing}")


def as_params(*sections: object) -> dict[str, str]:
    """Config dataclasses -> MLflow params named exactly as their fields ({'lr': '0.05',
    'hidden': '300,100', ...}); MLflow params are strings. Field names are unique across the
    config classes, so nothing is prefixed and `hpo train` and a search trial log the same names."""
    flat: dict[str, str] = {}
    for section in sections:
        for key, value in asdict(section).items():  # type: ignore[call-overload]
            if isinstance(value, (tuple, list)):
                value = ",".join(str(v) for v in value)
            if key in flat:
                raise AssertionError(f"config field {key!r} is defined twice")  # a programming error
            flat[key] = str(value)
    return flat


def model_config_from_dict(raw: dict[str, Any]) -> ModelConfig:
    """Rebuild a ModelConfig from its JSON form (lists become tuples; unknown keys are refused)."""
    known = {f.name for f in fields(ModelConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown model settings {sorted(unknown)} in checkpoint config")
    # A checkpoint made before other datasets records no input: it was MNIST's, ModelConfig's default.
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return ModelConfig(**values)


@dataclass(frozen=True)
class ModelLimits:
    """What a searched model may be (None: no limit), checked before it trains."""

    max_params: int | None = None
    max_flops: int | None = None  # one image's forward pass
    max_latency_ms: float | None = None  # batch 1 on the CPU, median

    def __post_init__(self) -> None:
        for flag, value in (
            ("--max-params", self.max_params),
            ("--max-flops", self.max_flops),
            ("--max-latency-ms", self.max_latency_ms),
        ):
            if value is not None and not value > 0:
                raise ConfigError(f"{flag} must be a positive number; got {value}")


RAY_LOCAL = "local"  # `--ray` without an address: a Ray instance of this machine, for this call only


@dataclass(frozen=True)
class SearchConfig:
    """How a search runs. `trials` is the study's target total of finished (complete + pruned)
    trials, not a count per call; `epochs` is the maximum per trial."""

    study: str
    storage: str
    trials: int = 100
    epochs: int = 10
    timeout: float | None = None  # seconds after which no new trial starts
    budget: float | None = None  # seconds for the whole call: the trial in flight and the end included
    trial_timeout: float | None = None  # seconds of training after which a trial stops (pruned)
    sampler: Sampler = "tpe"
    pruner: Pruner = "sha"  # rungs at epochs 1, 3, 9 from the first trial (benchmarks/QUALITY.md)
    seed: int = 0
    device: str = "auto"
    jobs: int | None = None  # worker processes; None: 1, or with `ray` one per GPU (else node) of the cluster
    tracking_uri: str | None = None
    warm_start: bool = True  # a new study first tries hpo's known-good configurations
    model: str = "any"  # the family searched: mlp, cnn or any (the space's choices)
    devices: tuple[str, ...] = ()  # --jobs workers' devices, round-robin; () = every visible GPU
    precision: Precision = "fp32"  # every trial's TrainConfig.precision
    limits: ModelLimits = ModelLimits()
    objective: Objective = "accuracy"
    ray: str | None = (
        None  # a Ray cluster's address (RAY_LOCAL: an instance for this call) placing the workers
    )

    @property
    def objectives(self) -> tuple[str, ...]:
        """("accuracy",) or ("accuracy", "params" | "latency" | "flops")."""
        return tuple(self.objective.split(","))

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials must be at least 1 (the study's target total); got {self.trials}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1; got {self.epochs}")
        limits = (
            ("--timeout", self.timeout),
            ("--trial-timeout", self.trial_timeout),
            ("--budget", self.budget),
        )
        for flag, seconds in limits:
            if seconds is not None and not seconds > 0:
                raise ConfigError(f"{flag} must be a positive number of seconds; got {seconds}")
        if self.jobs is not None and not 1 <= self.jobs <= 64:
            raise ConfigError(f"--jobs must be between 1 and 64; got {self.jobs}")
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("pruner", self.pruner, PRUNERS)
        _choice("model", self.model, (*FAMILY_NAMES, "any"))
        _choice("precision", self.precision, PRECISIONS)
        _choice("objective", self.objective, OBJECTIVES)
        if self.objective != "accuracy" and self.sampler == "cmaes":
            fix = "use --sampler tpe or random"
            raise ConfigError(
                f"--sampler cmaes optimizes one objective: with --objective {self.objective}, {fix}"
            )
        if self.devices and self.ray:
            raise ConfigError(
                "--devices does not apply with --ray: Ray gives each worker its GPU; drop --devices"
            )
        if self.devices and (self.jobs or 1) == 1:
            raise ConfigError("--devices spreads --jobs workers over devices: add --jobs N, or use --device")
        if not self.study or any(c in self.study for c in "/\\\n"):
            raise ConfigError(f"--study must be a plain name like mnist-mlp; got {self.study!r}")
