"""Warm start: known-good configurations a new study tries first, enqueued as ordinary trials (so
the first minutes of a search already give a strong model and TPE starts from good points).
Each is an Optuna parameter dict of the default space; one outside a study's space is skipped;
a few train for fewer epochs than --epochs (SCHEDULES).
After hpo's own points come the best configurations of earlier studies in the same store (a
Fashion-MNIST study starts from what MNIST studies found)."""

from __future__ import annotations

import re
from typing import Any

from hpo.search.budget import COST_PREFIX
from hpo.search.space import Choice, Space
from hpo.stores import link
from hpo.stores.optuna import TrialRow

PRIORS = 2  # earlier studies' best configurations a new study tries, best first

_SGD_COSINE = {"optimizer": "sgd", "momentum": 0.9, "schedule": "cosine", "batch_size": 128}
# The compact warm starts' common part: three blocks with batch norm, a GAP head, affine shifts.
_GAP_CNN = {
    "family": "cnn", "activation": "relu", "dropout": 0.0, "batch_norm": True, "cnn_blocks": 3,
    "cnn_kernel": 3, "cnn_head": "gap", "cnn_fc_width": 0, **_SGD_COSINE,
    "lr_sgd": 0.05, "weight_decay": 1e-4, "augment": "affine", "label_smoothing": 0.0,
}  # fmt: skip

POINTS: dict[str, dict[str, Any]] = {
    # The course's MLP, 784-300-100-10 (LeNet-300-100), trained with today's SGD recipe.
    "textbook-mlp": {
        "family": "mlp", "activation": "relu", "dropout": 0.0, "batch_norm": False, "mlp_layers": 2,
        "mlp_width_0": 300, "mlp_width_1": 100, **_SGD_COSINE, "lr_sgd": 0.05, "weight_decay": 1e-4,
        "augment": "none", "label_smoothing": 0.0,
    },
    # A wide MLP with dropout and ±2 px shifts: the usual way past 98.5% without convolutions.
    "wide-mlp-shift": {
        "family": "mlp", "activation": "relu", "dropout": 0.2, "batch_norm": False, "mlp_layers": 2,
        "mlp_width_0": 1024, "mlp_width_1": 1024, **_SGD_COSINE, "lr_sgd": 0.05, "weight_decay": 1e-5,
        "augment": "shift", "label_smoothing": 0.0,
    },
    # The small CNN below without augmentation, on a short schedule (SCHEDULES): a strong model in
    # the first minutes of a CPU search, since augmentation pays only over longer schedules.
    "small-cnn-quick": {
        "family": "cnn", "activation": "relu", "dropout": 0.25, "batch_norm": True, "cnn_blocks": 2,
        "cnn_convs": 1, "cnn_channels_0": 32, "cnn_channels_1": 64, "cnn_kernel": 3, "cnn_head": "flatten",
        "cnn_fc_width": 128, **_SGD_COSINE,
        "lr_sgd": 0.05, "weight_decay": 5e-4, "augment": "none", "label_smoothing": 0.1,
    },
    # A small augmented CNN (two conv blocks with batch norm, FC head): 99.4%+ on MNIST.
    "small-cnn-affine": {
        "family": "cnn", "activation": "relu", "dropout": 0.25, "batch_norm": True, "cnn_blocks": 2,
        "cnn_convs": 1, "cnn_channels_0": 32, "cnn_channels_1": 64, "cnn_kernel": 3, "cnn_head": "flatten",
        "cnn_fc_width": 128, **_SGD_COSINE,
        "lr_sgd": 0.05, "weight_decay": 5e-4, "augment": "affine", "label_smoothing": 0.1,
    },
    # For small-model searches (space.COMPACT_SPACE). 7,154 parameters: two 3x3 convs per block
    # at 8, 12 and 16 channels, batch norm and a global-average-pool head, the shape of MNIST's
    # hand-designed ~7k nets (99.4% with augmentation).
    "tiny-cnn-gap": {
        **_GAP_CNN, "cnn_convs": 2, "cnn_channels_0": 8, "cnn_channels_1": 12, "cnn_channels_2": 16,
        "cnn_conv": "full",
    },
    # 3,306 parameters: depthwise-separable convs at 16, 32 and 48 channels (MNIST's separable
    # 5k hand design reached 98.4%).
    "separable-cnn-gap": {
        **_GAP_CNN, "cnn_convs": 1, "cnn_channels_0": 16, "cnn_channels_1": 32, "cnn_channels_2": 48,
        "cnn_conv": "separable",
    },
}  # fmt: skip

# Warm starts trained for fewer epochs than the study's --epochs (never more): 3 epochs of the
# unaugmented CNN take ~1.3 minutes on one CPU core, where the augmented one's 10 take ~5.
SCHEDULES: dict[str, int] = {"small-cnn-quick": 3}

# Warm starts that are another's long-budget form (the same model with augmentation, on --epochs),
# tried under a --budget only when their epochs are predicted to take at most LONG_SHARE of it, or
# when their short form did not complete. On a 20-minute budget on one CPU core the augmented CNN's
# 10 epochs take ~4.5 minutes, the time in which the sampler's CNNs would train, for the validation
# accuracy the quick form had after 76 s (Fashion-MNIST); on 40 minutes, or on a GPU, it is cheap.
LONG_FORM_OF: dict[str, str] = {"small-cnn-affine": "small-cnn-quick"}
LONG_SHARE = 1 / 6


def long_form_reason(
    name: str | None, *, schedule_s: float, budget_s: float | None, completed: set[str]
) -> str:
    """Why the warm start `name` is skipped ("" when it trains): it is a long form (LONG_FORM_OF)
    whose short form is among the `completed` warm starts, and its whole schedule, `schedule_s`
    seconds predicted, is more than LONG_SHARE of the --budget's `budget_s`."""
    short = LONG_FORM_OF.get(name or "")
    if budget_s is None or short not in completed or schedule_s <= LONG_SHARE * budget_s:
        return ""
    return (
        f"{COST_PREFIX}warm start '{name}' is predicted to take {schedule_s:.0f} s, more than "
        f"{LONG_SHARE:.0%} of the {budget_s:.0f} s --budget, and its short form '{short}' "
        "completed; skipped before training"
    )


def attrs_for(name: str, *, epochs: int) -> dict[str, Any]:
    """The trial attributes a warm start named `name` is queued with, in a study of `epochs` per
    trial: its name, and its own schedule when that is shorter."""
    own = SCHEDULES.get(name, epochs)
    return {link.WARM_START: name} | ({link.SCHEDULE_EPOCHS: own} if own < epochs else {})


def _fits(value: Any, spec: Any) -> bool:
    if isinstance(spec, Choice):
        return value in spec.choices
    return bool(spec.low <= value <= spec.high)


def _inside(params: dict[str, Any], space: Space) -> bool:
    """Every parameter (per-layer keys checked against their parameter) is one `space` can draw."""
    names = {key: re.sub(r"_\d+$", "", key) for key in params}
    return all(names[k] in space and _fits(v, space[names[k]]) for k, v in params.items())


def points_for(space: Space, *, limit: int) -> dict[str, dict[str, Any]]:
    """The known-good points inside `space`, at most `limit` of them, in order."""
    chosen = {name: params for name, params in POINTS.items() if _inside(params, space)}
    return dict(list(chosen.items())[:limit])


def priors_for(space: Space, *, bests: dict[str, TrialRow], limit: int) -> dict[str, dict[str, Any]]:
    """The best trials of earlier studies (`bests`: study name -> its best complete trial) inside
    `space`, best first, at most `limit`, named for where they come from; a configuration already
    among hpo's points or another study's is taken once."""
    chosen: dict[str, dict[str, Any]] = {}
    for study, row in sorted(bests.items(), key=lambda item: -(item[1].value or 0.0)):
        seen = [*POINTS.values(), *chosen.values()]
        if _inside(row.params, space) and row.params not in seen and len(chosen) < limit:
            chosen[f"best of study '{study}' (trial {row.number}, {100 * (row.value or 0):.2f}%)"] = (
                row.params
            )
    return chosen
