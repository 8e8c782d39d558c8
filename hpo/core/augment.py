"""Data augmentation on the device: a whole batch is shifted (and for "affine" also rotated and
scaled) by one `affine_grid` + `grid_sample` call, with no per-image Python. Applied to training
batches only; the random draws come from the fit's generator, so they follow the trial's seed.

Ranges are the ones that keep digits and clothes recognisable and are standard for MNIST-sized
images: up to ±2 px of translation, ±10° of rotation, ±10% of scale."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SHIFT_PX = 2.0  # maximum translation in pixels, each axis
ROTATE_DEG = 10.0
SCALE = 0.10  # maximum relative zoom in or out


def augment_batch(
    x: torch.Tensor, *, kind: str, background: float, generator: torch.Generator
) -> torch.Tensor:
    """(B, 1, H, W) normalized images -> randomly transformed copies, same shape and device.
    `background` is the normalized value of a black pixel, used to fill what moves in."""
    if kind == "none":
        return x
    b, _, h, _ = x.shape
    u = torch.rand(b, 4, device=x.device, generator=generator) * 2 - 1  # uniform in [-1, 1]
    shift = SHIFT_PX * 2 / h  # affine_grid works in [-1, 1] coordinates: 2 units per side
    tx, ty = u[:, 0] * shift, u[:, 1] * shift
    if kind == "affine":
        angle = u[:, 2] * math.radians(ROTATE_DEG)
        zoom = 1 + u[:, 3] * SCALE
    else:
        angle = torch.zeros_like(tx)
        zoom = torch.ones_like(tx)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom  # the grid maps output -> input
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return moved + background
