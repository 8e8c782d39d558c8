"""Warm start: known-good configurations a new study tries first, enqueued as ordinary trials (so
the first minutes of a search already give a strong model and TPE starts from good points).
Each is an Optuna parameter dict of the default space; one outside a study's space is skipped."""

from __future__ import annotations

import re
from typing import Any

from hpo.search.space import Choice, Space

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


def _fits(value: Any, spec: Any) -> bool:
    if isinstance(spec, Choice):
        return value in spec.choices
    return bool(spec.low <= value <= spec.high)


def points_for(space: Space, *, limit: int) -> dict[str, dict[str, Any]]:
    """The known-good points inside `space` (per-layer keys checked against their parameter),
    at most `limit` of them, in order."""
    chosen: dict[str, dict[str, Any]] = {}
    for name, params in POINTS.items():
        specs = {key: space[re.sub(r"_\d+$", "", key)] for key in params}
        if all(_fits(value, specs[key]) for key, value in params.items()) and len(chosen) < limit:
            chosen[name] = params
    return chosen
