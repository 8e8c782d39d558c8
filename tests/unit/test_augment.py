"""On-device batch augmentation: shapes, background fill, bounded motion, seeding."""

from __future__ import annotations

import pytest
import torch

from hpo.core.augment import SHIFT_PX, augment_batch

BACKGROUND = -0.42  # a normalized black pixel


def dots(n: int) -> torch.Tensor:
    """(n, 1, 28, 28) black images with a bright 3x3 square in the centre."""
    x = torch.full((n, 1, 28, 28), BACKGROUND)
    x[:, :, 13:16, 13:16] = 2.8
    return x


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    ink = (x - BACKGROUND).clamp(min=0)[:, 0]
    rows = torch.arange(28, dtype=torch.float32)
    total = ink.sum((1, 2))
    return torch.stack([(ink.sum(2) * rows).sum(1) / total, (ink.sum(1) * rows).sum(1) / total], 1)


def run(kind: str, seed: int = 0, n: int = 256) -> torch.Tensor:
    return augment_batch(
        dots(n), kind=kind, background=BACKGROUND, generator=torch.Generator().manual_seed(seed)
    )


def test_none_is_the_identity() -> None:
    x = dots(4)
    assert augment_batch(x, kind="none", background=BACKGROUND, generator=torch.Generator()) is x


@pytest.mark.parametrize("kind", ["shift", "affine"])
def test_moves_each_image_a_little_and_keeps_the_rest(kind: str) -> None:
    out = run(kind)
    assert out.shape == (256, 1, 28, 28) and out.dtype == torch.float32
    moved = centre_of_mass(out) - 14.0  # the square's centre is pixel 14
    assert moved.abs().max() <= SHIFT_PX + 0.6  # rotation/scale about the centre barely move it
    assert moved.std(0).min() > 0.5  # every image gets its own draw
    corners = out[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert torch.allclose(corners, torch.full_like(corners, BACKGROUND), atol=1e-5)  # filled with black
    ink = (out - BACKGROUND).sum((1, 2, 3)) / (dots(1) - BACKGROUND).sum()
    assert ((ink > 0.75) & (ink < 1.3)).all()  # the digit stays whole


def test_follows_the_generator_seed() -> None:
    assert torch.equal(run("affine", seed=3), run("affine", seed=3))
    assert not torch.equal(run("affine", seed=3), run("affine", seed=4))
