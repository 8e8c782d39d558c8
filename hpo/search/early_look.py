"""The early look: a rung below the pruner's first (the end of epoch 1). A quarter into its first
epoch, a trial's model is evaluated once on a fixed subset of the validation split, and a sampled
trial goes on only when that accuracy is in the top third of the study's early looks so far
(ASHA's promotion rule, reduction factor 3). On a CPU, where one CNN epoch takes 10-60 s, this is
what lets a 20-minute budget see dozens of configurations instead of a handful.

Warm starts and final trainings are looked at (their figures are what the others are measured
against) but never pruned here: a quarter epoch favours models that learn fast over those that
learn well, and those two are known to be good. A multi-objective study (its own rung rule) and
`--pruner none` have no early look."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from hpo.core.data import Split
from hpo.core.engine import evaluate
from hpo.stores import link
from hpo.stores.optuna import TrialRow

FRACTION = 0.25  # of the first epoch's batches; the look comes at the first progress report past it
IMAGES = 2000  # validation images looked at: ~0.8 points of standard error at 85% accuracy
MIN_BATCHES = 32  # an epoch of fewer batches (tiny data) has no early look: a full epoch is cheap
MIN_PEERS = 3  # looks recorded in the study before any trial is pruned at one
REDUCTION = 3  # the top 1/REDUCTION of the looks goes on


@dataclass(frozen=True)
class Look:
    accuracy: float  # 0..1 on `images` validation images
    fraction: float  # of epoch 1 trained when looked at
    images: int


def subset(val: Split) -> Split:
    """The validation images every early look of a study sees: the split's first IMAGES (the split
    is a seeded permutation, so they are a random sample of it)."""
    return Split(x=val.x[:IMAGES], y=val.y[:IMAGES])


def due(*, batch: int, batches: int) -> bool:
    """Whether the first epoch's progress (`batch` of `batches`) has reached the look."""
    return batches >= MIN_BATCHES and batch >= FRACTION * batches


def take(model: nn.Module, images: Split, *, batch: int, batches: int) -> Look:
    """Evaluate the model mid-epoch, and put it back in training mode for the rest of the epoch."""
    _, accuracy = evaluate(model, images)
    model.train()
    return Look(accuracy=accuracy, fraction=batch / batches, images=len(images))


def peers(rows: list[TrialRow]) -> list[float]:
    """The early-look accuracies recorded on the study's trials."""
    return [float(r.attrs[link.EARLY_VAL]) for r in rows if r.attrs.get(link.EARLY_VAL) is not None]


def reason(look: Look, *, others: list[float]) -> str:
    """Why to prune a sampled trial at its early look ("" to go on): its accuracy is below the top
    1/REDUCTION of the looks so far, its own included (Optuna's SuccessiveHalvingPruner rule)."""
    if len(others) < MIN_PEERS:
        return ""
    competing = sorted([*others, look.accuracy], reverse=True)
    cutoff = competing[max(0, len(competing) // REDUCTION - 1)]
    if look.accuracy >= cutoff:
        return ""
    return (
        f"early look: {100 * look.accuracy:.1f}% on {look.images} validation images after "
        f"{look.fraction:.0%} of epoch 1, below the top third of the study's early looks "
        f"({100 * cutoff:.1f}%)"
    )
