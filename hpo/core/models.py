"""ModelConfig -> nn.Module. Pure builders: no Optuna, no device choice, no I/O."""

from __future__ import annotations

import torch
from torch import nn

from hpo.config import IMAGE_SIZE, NUM_CLASSES, ModelConfig, cnn_output_side

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
    """Flatten (N, 1, 28, 28) -> hidden layers -> (N, 10) logits."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = IMAGE_SIZE * IMAGE_SIZE
    for hidden in cfg.hidden:
        layers += _dense_block(width_in=width, width_out=hidden, cfg=cfg)
        width = hidden
    layers.append(nn.Linear(width, NUM_CLASSES))
    return nn.Sequential(*layers)


# Activations that never decrease: max-pooling commutes with them, max(f(a), f(b)) = f(max(a, b)).
_MONOTONIC = frozenset({"relu", "leaky_relu", "elu", "tanh", "sigmoid"})


def _conv(*, channels_in: int, channels_out: int, cfg: ModelConfig) -> list[nn.Module]:
    """One k x k convolution (N, C_in, H, W) -> (N, C_out, H', W'): full (C_in*C_out*k*k weights), or
    separable: a k x k conv per input channel, then a 1x1 conv across them (C_in*k*k + C_in*C_out
    weights, e.g. 16 -> 32 at k=3: 656 instead of 4,608). On one input channel (a network's first
    conv) separable would only add a 1x1 conv, so that one stays full."""
    pad = cfg.kernel_size // 2 if cfg.padding == "same" else 0
    bias = not cfg.batch_norm  # batch norm's shift replaces the bias
    if cfg.conv == "full" or channels_in == 1:
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
    """Conv blocks -> flatten (or global average pool) -> [hidden fc] -> (N, 10) logits."""
    layers: list[nn.Module] = []
    channels = 1
    for out in cfg.channels:
        layers += _conv_block(channels_in=channels, channels_out=out, cfg=cfg)
        channels = out
    if cfg.head == "gap":  # (N, C, h, w) -> (N, C): few weights, translation-tolerant
        layers.append(nn.AdaptiveAvgPool2d(1))
        width = channels
    else:
        side = cnn_output_side(
            blocks=len(cfg.channels),
            kernel_size=cfg.kernel_size,
            padding=cfg.padding,
            convs_per_block=cfg.convs_per_block,
        )
        width = channels * side * side  # 320 for seed 001's net (20 channels x 4 x 4)
    layers.append(nn.Flatten())
    if cfg.fc_width:
        layers += _dense_block(width_in=width, width_out=cfg.fc_width, cfg=cfg)
        width = cfg.fc_width
    layers.append(nn.Linear(width, NUM_CLASSES))
    return nn.Sequential(*layers)


def build_model(cfg: ModelConfig) -> nn.Module:
    return build_mlp(cfg) if cfg.family == "mlp" else build_cnn(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# The brightest pixel of an image on the 0..1 scale: 1.0 plus float rounding (1.0000001 after
# x / 255 in float32). An 8-bit image no brighter than this is blank (0 or 1 of 255) on any scale.
ONE_SCALE_MAX = 1.5


class RawPixelClassifier(nn.Module):
    """The model as MLflow serves it: raw pixel values in, class probabilities out, the training
    normalization inside. (N, 28, 28) or (N, 1, 28, 28) float32, light ink on dark as in the
    datasets -> (N, 10) softmax probabilities. Each image's scale is decided by its brightest
    pixel: up to ONE_SCALE_MAX it is on the 0..1 scale of torchvision's ToTensor(), brighter on
    the 0..255 scale of the IDX files and 8-bit PNGs (fed 0..1 pixels as 0..255, a model saw
    nearly black images and answered at chance, silently)."""

    def __init__(self, model: nn.Module, *, mean: float, std: float) -> None:
        super().__init__()
        self.model = model
        self.mean: torch.Tensor  # buffers, on the 0..1 scale: they follow the model across devices
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
        brightest = x.amax(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
        x = x / torch.where(brightest > ONE_SCALE_MAX, 255.0, 1.0)  # per image, on the 0..1 scale
        return torch.softmax(self.model((x - self.mean) / self.std), dim=1)
