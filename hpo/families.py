"""Model families: each is one registered value in `FAMILIES` holding what hpo knows of it apart
from torch: its section of `ModelConfig` (the fields only it reads), its search-space keys in the
default and the compact space, its sampler, its checks, its one-line description and its largest
model within a space. Its network is built by `hpo.core.models` under the same name.

Adding a family: an entry here (and its name in `FamilyName`) and a builder there; the spelling
table (`hpo.spellings`) names any new field's `hpo train` flag and space keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from hpo.errors import ConfigError
from hpo.space_types import Choice, Range, Space, Suggest, most

FamilyName = Literal["mlp", "cnn", "resnet"]
FAMILY_NAMES: tuple[FamilyName, ...] = get_args(FamilyName)
# A CNN's vocabulary. Its head: the last block's maps flattened, or global-average-pooled per
# channel. Its convolutions: full k x k, or depthwise-separable (a k x k conv per channel, then a
# 1x1 conv across channels: about k*k times fewer weights and FLOPs when the channels are many).
KERNEL_SIZES = (3, 5)
HEADS = ("flatten", "gap")
CONVS = ("full", "separable")


class Arch(Protocol):
    """The fields of `hpo.config.ModelConfig` the families read."""

    @property
    def family(self) -> str: ...
    @property
    def hidden(self) -> tuple[int, ...]: ...
    @property
    def channels(self) -> tuple[int, ...]: ...
    @property
    def kernel_size(self) -> int: ...
    @property
    def padding(self) -> str: ...
    @property
    def fc_width(self) -> int: ...
    @property
    def convs_per_block(self) -> int: ...
    @property
    def head(self) -> str: ...
    @property
    def conv(self) -> str: ...
    @property
    def res_blocks(self) -> int: ...
    @property
    def in_shape(self) -> tuple[int, int, int]: ...


@dataclass(frozen=True)
class ModelFamily:
    name: FamilyName
    article: str  # "an MLP": how a message names one of its models
    section: tuple[str, ...]  # the ModelConfig fields only this family reads
    space: Space  # its keys in the default space
    compact: Space  # its keys in the compact space (small or fast models); {}: not drawn there
    sample: Callable[[Suggest], dict[str, Any]]  # its section's values, drawn
    check: Callable[[Arch], None]  # raises ConfigError on a section that cannot be built
    describe: Callable[[Arch], str]  # e.g. "cnn 32-64 k3 fc128"
    largest: Callable[[Space], dict[str, Any]]  # its largest model's section within a space
    size_keys: str  # the space keys that make its models large, for a message


def conv_output_side(side: int, *, blocks: int, kernel_size: int, padding: str, convs_per_block: int) -> int:
    """Pixels along one side after `blocks` blocks of `convs_per_block` convs and a 2x2 pool."""
    for _ in range(blocks):
        side = side if padding == "same" else side - convs_per_block * (kernel_size - 1)
        side //= 2
    return side


def _mlp_sample(suggest: Suggest) -> dict[str, Any]:
    layers = suggest("mlp_layers", None)
    return {"hidden": tuple(suggest("mlp_width", f"mlp_width_{i}") for i in range(layers))}


def _mlp_check(m: Arch) -> None:
    if not 1 <= len(m.hidden) <= 6:
        raise ConfigError(f"an MLP has 1 to 6 hidden layers; --hidden gave {len(m.hidden)}")


MLP = ModelFamily(
    name="mlp",
    article="an MLP",
    section=("hidden",),
    space={"mlp_layers": Range(1, 3, integer=True), "mlp_width": Range(32, 1024, log=True, integer=True)},
    compact={"mlp_layers": Range(1, 2, integer=True), "mlp_width": Range(8, 256, log=True, integer=True)},
    sample=_mlp_sample,
    check=_mlp_check,
    describe=lambda m: "mlp " + "-".join(map(str, m.hidden)),
    largest=lambda s: {"hidden": (int(most(s["mlp_width"])),) * int(most(s["mlp_layers"]))},
    size_keys="mlp_width and mlp_layers",
)


def _cnn_sample(suggest: Suggest) -> dict[str, Any]:
    blocks = suggest("cnn_blocks", None)
    return {
        "channels": tuple(suggest("cnn_channels", f"cnn_channels_{i}") for i in range(blocks)),
        "convs_per_block": suggest("cnn_convs", None),
        "kernel_size": suggest("cnn_kernel", None),
        "padding": "same",
        "head": suggest("cnn_head", None),
        "conv": suggest("cnn_conv", None),
        "fc_width": suggest("cnn_fc_width", None),
    }


def _cnn_check(m: Arch) -> None:
    if not 1 <= len(m.channels) <= 4:
        raise ConfigError(f"a CNN has 1 to 4 conv blocks; --channels gave {len(m.channels)}")
    if not 1 <= m.convs_per_block <= 3:
        raise ConfigError(f"--convs-per-block must be 1, 2 or 3; got {m.convs_per_block}")
    _, height, width = m.in_shape
    sides = [
        conv_output_side(
            s,
            blocks=len(m.channels),
            kernel_size=m.kernel_size,
            padding=m.padding,
            convs_per_block=m.convs_per_block,
        )
        for s in (height, width)
    ]
    if min(sides) < 1:
        raise ConfigError(
            f"{len(m.channels)} blocks of {m.convs_per_block} conv(s) with kernel {m.kernel_size} and "
            f"{m.padding} padding shrink a {height}x{width} image to nothing: "
            "use fewer blocks or --padding same"
        )


def _cnn_describe(m: Arch) -> str:
    arch = f"cnn {'-'.join(map(str, m.channels))}"
    arch += f"x{m.convs_per_block}" if m.convs_per_block > 1 else ""
    arch += f" k{m.kernel_size}" + (" sep" if m.conv == "separable" else "")
    return arch + (" gap" if m.head == "gap" else "") + f" fc{m.fc_width}"


def _cnn_largest(s: Space) -> dict[str, Any]:
    heads = s["cnn_head"]
    return {
        "channels": (int(most(s["cnn_channels"])),) * int(most(s["cnn_blocks"])),
        "convs_per_block": int(most(s["cnn_convs"])),
        "kernel_size": int(most(s["cnn_kernel"])),
        "head": "flatten" if not isinstance(heads, Choice) or "flatten" in heads.choices else "gap",
        "fc_width": int(most(s["cnn_fc_width"])),
    }


CNN = ModelFamily(
    name="cnn",
    article="a CNN",
    section=("channels", "kernel_size", "padding", "fc_width", "convs_per_block", "head", "conv"),
    space={
        "cnn_blocks": Range(1, 3, integer=True),
        "cnn_convs": Range(1, 2, integer=True),  # convs per block, before its 2x2 pool
        "cnn_channels": Choice((16, 32, 64, 128)),  # per block: cnn_channels_0, ...
        "cnn_kernel": Choice(KERNEL_SIZES),
        "cnn_head": Choice(HEADS),
        "cnn_fc_width": Choice((0, 64, 128, 256)),
        "cnn_conv": Choice(("full",)),
    },
    # Narrow channels, up to 4 blocks of up to 3 convs, depthwise-separable convs and GAP heads:
    # the shapes of MNIST's hand-designed 5k-9k parameter nets.
    compact={
        "cnn_blocks": Range(2, 4, integer=True),
        "cnn_convs": Range(1, 3, integer=True),
        "cnn_channels": Choice((4, 8, 12, 16, 24, 32, 48)),
        "cnn_kernel": Choice(KERNEL_SIZES),
        "cnn_head": Choice(("gap", "flatten")),
        "cnn_fc_width": Choice((0, 16, 32)),
        "cnn_conv": Choice(CONVS),
    },
    sample=_cnn_sample,
    check=_cnn_check,
    describe=_cnn_describe,
    largest=_cnn_largest,
    size_keys="cnn_channels and cnn_fc_width",
)


def _resnet_sample(suggest: Suggest) -> dict[str, Any]:
    stages, width = suggest("res_stages", None), suggest("res_width", None)
    # Each stage halves the maps and doubles the channels: about the same work per stage.
    return {"channels": tuple(width * 2**i for i in range(stages)), "res_blocks": suggest("res_blocks", None)}


def _resnet_check(m: Arch) -> None:
    if not 1 <= len(m.channels) <= 4:
        raise ConfigError(f"a ResNet has 1 to 4 stages; --channels gave {len(m.channels)}")
    if not 1 <= m.res_blocks <= 3:
        raise ConfigError(f"--res-blocks must be 1, 2 or 3 residual blocks per stage; got {m.res_blocks}")


RESNET = ModelFamily(
    name="resnet",
    article="a ResNet",
    section=("channels", "res_blocks"),
    space={
        "res_stages": Range(2, 3, integer=True),
        "res_width": Choice((16, 32, 64)),  # the first stage's channels
        "res_blocks": Range(1, 2, integer=True),  # residual blocks (two 3x3 convs each) per stage
    },
    compact={},
    sample=_resnet_sample,
    check=_resnet_check,
    describe=lambda m: f"resnet {'-'.join(map(str, m.channels))} x{m.res_blocks}",
    largest=lambda s: {
        "channels": tuple(int(most(s["res_width"])) * 2**i for i in range(int(most(s["res_stages"])))),
        "res_blocks": int(most(s["res_blocks"])),
    },
    size_keys="res_width and res_stages",
)

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (MLP, CNN, RESNET)}
