"""How much memory a model needs to train, known before it exists: the model is built on PyTorch's
`meta` device (shapes without storage) and its activations follow from each layer's output shape,
so a configuration of a hundred gigabytes is sized in milliseconds and refused before anything is
allocated. The same shapes give its floating-point operations per image, recorded with each trial.
(No forward pass on `meta`: that imports torch._dynamo, 0.8 s, which training avoids.)"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import nn

from hpo.config import ModelConfig
from hpo.core.models import Residual, build_model

# float32 copies of every parameter while training: weights, gradients, and up to two moments
# (Adam, AdamW; SGD and RMSprop keep fewer).
COPIES_PER_PARAMETER = 4
# Activations are kept for the backward pass, and their gradients take as much again.
COPIES_PER_ACTIVATION = 2
FLOAT_BYTES = 4


@dataclass(frozen=True)
class Footprint:
    parameters: int
    activations_per_image: int  # floats each layer outputs for one image
    flops_per_image: int = 0  # one forward pass: 2 per multiply-add of the convs and linear layers

    def training_bytes(self, batch_size: int) -> int:
        """Bytes to train at `batch_size`: the parameters' copies plus the batch's activations."""
        floats = COPIES_PER_PARAMETER * self.parameters
        floats += COPIES_PER_ACTIVATION * self.activations_per_image * batch_size
        return FLOAT_BYTES * floats


def footprint(cfg: ModelConfig) -> Footprint:
    """The model's parameter count and activations per image, from its shapes alone."""
    with torch.device("meta"):
        model = build_model(cfg)
    _, activations, flops = _walk(model, cfg.in_shape)
    return Footprint(
        parameters=sum(p.numel() for p in model.parameters()),
        activations_per_image=activations,
        flops_per_image=flops,
    )


def _walk(module: nn.Module, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int, int]:
    """One image of `shape` ((C, H, W), later (features,)) through `module`: its output shape, and
    the activations and FLOPs of every layer on the way. A residual block's two paths both start
    from its input; their sum adds one output's worth of activations."""
    if isinstance(module, nn.Sequential):
        activations = flops = 0
        for layer in module:
            shape, a, f = _walk(layer, shape)
            activations, flops = activations + a, flops + f
        return shape, activations, flops
    if isinstance(module, Residual):
        out, a_main, f_main = _walk(module.main, shape)
        _, a_short, f_short = _walk(module.shortcut, shape)
        return out, a_main + a_short + math.prod(out), f_main + f_short
    out = _output_shape(module, shape)
    return out, (math.prod(out) if not isinstance(module, nn.Identity) else 0), _flops(module, out)


def _flops(layer: nn.Module, out: tuple[int, ...]) -> int:
    """One image's forward FLOPs in `layer`, given its output shape: 2 per multiply-add. Batch
    norm, activations and pooling are left out: a few operations per activation, against the
    hundreds per output of a convolution."""
    if isinstance(layer, nn.Conv2d):
        per_output = (layer.in_channels // layer.groups) * layer.kernel_size[0] * layer.kernel_size[1]
        return 2 * per_output * math.prod(out)
    if isinstance(layer, nn.Linear):
        return 2 * layer.in_features * layer.out_features
    return 0


def _output_shape(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """One image's shape after `layer` (the layer kinds `hpo.core.models` builds)."""
    if isinstance(layer, nn.Conv2d):
        kernel, pad, stride = layer.kernel_size[0], layer.padding[0], layer.stride[0]
        assert isinstance(pad, int)  # the builder gives numbers, never "same"
        height, width = ((side + 2 * pad - kernel) // stride + 1 for side in shape[1:])
        return (layer.out_channels, height, width)
    if isinstance(layer, nn.MaxPool2d):
        return (shape[0], shape[1] // 2, shape[2] // 2)
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return (shape[0], 1, 1)
    if isinstance(layer, nn.Flatten):
        return (math.prod(shape),)
    if isinstance(layer, nn.Linear):
        return (layer.out_features,)
    return shape  # activations, batch norm, dropout keep the shape


def free_bytes(device: torch.device) -> int:
    """Memory a new allocation can take on `device`: the GPU's free memory, the host's available
    memory (Linux's MemAvailable: free plus what the kernel can reclaim)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def gib(n: int) -> str:
    """A size in bytes for a person: GiB, MiB or KiB."""
    for unit, scale, digits in (("GiB", 2**30, 1), ("MiB", 2**20, 0), ("KiB", 2**10, 0)):
        if n >= scale:
            return f"{n / scale:.{digits}f} {unit}"
    return f"{n} B"


def too_large(size: Footprint, *, batch_size: int, device: torch.device) -> str:
    """Why a model of this size cannot train on `device` ("" when it fits): one line with its size."""
    need, free = size.training_bytes(batch_size), free_bytes(device)
    if need <= free:
        return ""
    return (
        f"too large for {device}: {size.parameters:,} parameters and {size.activations_per_image:,} "
        f"activations per image need about {gib(need)} to train at batch {batch_size}, {gib(free)} is free"
    )
