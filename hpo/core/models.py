"""ModelConfig -> nn.Module: one builder per model family (`hpo.families`), registered in
`BUILDERS` under the family's name. Pure builders: no Optuna, no device choice, no I/O. Every model
maps (N, C, H, W) images (`cfg.in_shape`) to (N, cfg.classes) logits."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from hpo.config import ModelConfig
from hpo.families import conv_output_side

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def _dense_block(*, width_in: int, width_out: int, cfg: ModelConfig) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(width_in, width_out, bias=not cfg.batch_norm)]
    if cfg.batch_norm:
        layers.append(nn.BatchNorm1d(width_out))
    layers.append(_ACTIVATIONS[cfg.activation]())
    if cfg.dropout > 0:
        layers.append(nn.Dropout(cfg.dropout))
    return layers


def build_mlp(cfg: ModelConfig) -> nn.Sequential:
    """Flatten (N, C, H, W) -> hidden layers -> (N, classes) logits."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(cfg.in_shape)
    for hidden in cfg.hidden:
        layers += _dense_block(width_in=width, width_out=hidden, cfg=cfg)
        width = hidden
    layers.append(nn.Linear(width, cfg.classes))
    return nn.Sequential(*layers)


# Activations that never decrease: max-pooling commutes with them, max(f(a), f(b)) = f(max(a, b)).
_MONOTONIC = frozenset({"relu", "leaky_relu", "elu", "tanh", "sigmoid"})


def _conv(*, channels_in: int, channels_out: int, cfg: ModelConfig) -> list[nn.Module]:
    """One k x k convolution (N, C_in, H, W) -> (N, C_out, H', W'): full (C_in*C_out*k*k weights), or
    separable: a k x k conv per input channel, then a 1x1 conv across them (C_in*k*k + C_in*C_out
    weights, e.g. 16 -> 32 at k=3: 656 instead of 4,608). A network's first conv stays full: on
    its few input channels separable would only add a 1x1 conv."""
    pad = cfg.kernel_size // 2 if cfg.padding == "same" else 0
    bias = not cfg.batch_norm  # batch norm's shift replaces the bias
    if cfg.conv == "full" or channels_in == cfg.in_shape[0]:
        return [nn.Conv2d(channels_in, channels_out, cfg.kernel_size, padding=pad, bias=bias)]
    k, groups = cfg.kernel_size, channels_in  # one k x k filter per input channel
    depthwise = nn.Conv2d(channels_in, channels_in, k, padding=pad, groups=groups, bias=False)
    return [depthwise, nn.Conv2d(channels_in, channels_out, 1, bias=bias)]


def _conv_block(*, channels_in: int, channels_out: int, cfg: ModelConfig) -> list[nn.Module]:
    """`convs_per_block` x (conv, [bn], act), then a 2x2 max-pool: (N, C_in, H, W) -> (N, C_out, H', W').
    For a monotonic activation the block's last one runs after the pool instead: the same function
    on a quarter of the values (seed 001's CNN: one CPU epoch 2.44 -> 2.20 s). Neither module holds
    weights, so the state-dict keys, and every saved checkpoint, stay as they were."""
    layers: list[nn.Module] = []
    for i in range(cfg.convs_per_block):
        conv_in = channels_in if i == 0 else channels_out
        layers += _conv(channels_in=conv_in, channels_out=channels_out, cfg=cfg)
        if cfg.batch_norm:
            layers.append(nn.BatchNorm2d(channels_out))
        layers.append(_ACTIVATIONS[cfg.activation]())
    if cfg.activation in _MONOTONIC:
        layers.insert(len(layers) - 1, nn.MaxPool2d(2))
    else:
        layers.append(nn.MaxPool2d(2))
    return layers


def build_cnn(cfg: ModelConfig) -> nn.Sequential:
    """Conv blocks -> flatten (or global average pool) -> [hidden fc] -> (N, classes) logits."""
    layers: list[nn.Module] = []
    channels = cfg.in_shape[0]
    for out in cfg.channels:
        layers += _conv_block(channels_in=channels, channels_out=out, cfg=cfg)
        channels = out
    if cfg.head == "gap":  # (N, C, h, w) -> (N, C): few weights, translation-tolerant
        layers.append(nn.AdaptiveAvgPool2d(1))
        width = channels
    else:
        height, width = (
            conv_output_side(
                side,
                blocks=len(cfg.channels),
                kernel_size=cfg.kernel_size,
                padding=cfg.padding,
                convs_per_block=cfg.convs_per_block,
            )
            for side in cfg.in_shape[1:]
        )
        width = channels * height * width  # 320 for seed 001's net (20 channels x 4 x 4)
    layers.append(nn.Flatten())
    if cfg.fc_width:
        layers += _dense_block(width_in=width, width_out=cfg.fc_width, cfg=cfg)
        width = cfg.fc_width
    layers.append(nn.Linear(width, cfg.classes))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """y = act(main(x) + shortcut(x)): `main` is two 3x3 convs (the first with `stride`), the
    shortcut the identity, or a strided 1x1 conv where the shape changes (He et al. 2016, option B).
    (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""

    def __init__(self, *, channels_in: int, channels_out: int, stride: int, cfg: ModelConfig) -> None:
        super().__init__()
        bias = not cfg.batch_norm
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d if cfg.batch_norm else lambda _: nn.Identity()
        self.main = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=bias),
            norm(channels_out),
            _ACTIVATIONS[cfg.activation](),
            nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=bias),
            norm(channels_out),
        )
        changed = stride != 1 or channels_in != channels_out
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=bias), norm(channels_out)
            )
            if changed
            else nn.Identity()
        )
        self.act = _ACTIVATIONS[cfg.activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.main(x) + self.shortcut(x))


def build_resnet(cfg: ModelConfig) -> nn.Sequential:
    """A small ResNet: a 3x3 stem conv, then per stage `res_blocks` residual blocks (the first
    of every stage after the first halves H and W), a global average pool and one linear layer:
    (N, C, H, W) -> (N, classes) logits."""
    first = cfg.channels[0]
    layers: list[nn.Module] = [nn.Conv2d(cfg.in_shape[0], first, 3, padding=1, bias=not cfg.batch_norm)]
    layers += [nn.BatchNorm2d(first)] if cfg.batch_norm else []
    layers.append(_ACTIVATIONS[cfg.activation]())
    channels = first
    for stage, out in enumerate(cfg.channels):
        for block in range(cfg.res_blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(Residual(channels_in=channels, channels_out=out, stride=stride, cfg=cfg))
            channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    layers += [nn.Dropout(cfg.dropout)] if cfg.dropout > 0 else []
    layers.append(nn.Linear(channels, cfg.classes))
    return nn.Sequential(*layers)


# One builder per family of hpo.families.FAMILIES (a test checks the two agree).
BUILDERS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "resnet": build_resnet,
}


def build_model(cfg: ModelConfig) -> nn.Module:
    return BUILDERS[cfg.family](cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# The brightest pixel of an image on the 0..1 scale: 1.0 plus float rounding (1.0000001 after
# x / 255 in float32). An 8-bit image no brighter than this is blank (0 or 1 of 255) on any scale.
ONE_SCALE_MAX = 1.5


class RawPixelClassifier(nn.Module):
    """The model as MLflow serves it: raw pixel values in, class probabilities out, the training
    normalization inside. (N, C, H, W) float32 images of the model's `in_shape` (a grey image may
    drop C: (N, H, W)), as in the training data -> (N, classes) softmax probabilities. Each
    image's scale is decided by its brightest pixel: up to ONE_SCALE_MAX it is on the 0..1 scale of
    torchvision's ToTensor(), brighter on the 0..255 scale of the IDX files and 8-bit PNGs (fed 0..1
    pixels as 0..255, a model saw nearly black images and answered at chance, silently)."""

    def __init__(self, model: nn.Module, *, mean: float, std: float, in_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.model = model
        self.in_shape = in_shape
        self.mean: torch.Tensor  # buffers, on the 0..1 scale: they follow the model across devices
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.reshape(-1, *self.in_shape)
        brightest = x.amax(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
        x = x / torch.where(brightest > ONE_SCALE_MAX, 255.0, 1.0)  # per image, on the 0..1 scale
        return torch.softmax(self.model((x - self.mean) / self.std), dim=1)
