"""What a search space reaches, for the results: the parameters a recorded space can draw, the
largest model of each family it allows, and a trial's parameters under one name each."""

from __future__ import annotations

from typing import Any

from hpo.config import ADAPTIVE_OPTIMIZERS, OPTIMIZERS, ModelConfig
from hpo.families import FAMILIES, FAMILY_NAMES
from hpo.search.space import Choice, Space


def drawable(raw: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a recorded space (`space_to_json`) that some trial of it can draw: an
    MLP-only space draws no `cnn_*`, a space without sgd no `lr_sgd`, and so on."""
    choices = {name: set(spec.get("choices", ())) for name, spec in raw.items()}
    families, optimizers = choices.get("family", set(FAMILY_NAMES)), choices.get("optimizer", set(OPTIMIZERS))
    unused = {key for name, family in FAMILIES.items() if name not in families for key in family.space}
    if not optimizers & {"sgd", "rmsprop"}:
        unused.add("momentum")
    if "sgd" not in optimizers:
        unused.add("lr_sgd")
    if not optimizers & set(ADAPTIVE_OPTIMIZERS):
        unused.add("lr_adaptive")
    if "exponential" not in choices.get("schedule", {"exponential"}):
        unused.add("gamma")
    return {name: spec for name, spec in raw.items() if name not in unused}


def plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's parameters with one name per hyperparameter: the learning rate is drawn as
    `lr_sgd` or `lr_adaptive` (one range per optimizer family) and shown as `lr`."""
    plain = {k: v for k, v in params.items() if k not in ("lr_sgd", "lr_adaptive")}
    for key in ("lr_sgd", "lr_adaptive"):
        if key in params:
            plain["lr"] = params[key]
    return plain


def largest_models(space: Space, *, in_shape: tuple[int, int, int], classes: int) -> list[ModelConfig]:
    """The largest model of each family the space can draw (most layers, widest, biggest kernel,
    flattened head), for (C, H, W) = `in_shape` images: if one of these cannot fit a device, the
    space asks for what cannot run."""
    families = space["family"].choices if isinstance(space["family"], Choice) else FAMILY_NAMES
    return [
        ModelConfig(
            family=name, **FAMILIES[name].largest(space), batch_norm=True, in_shape=in_shape, classes=classes
        )
        for name in families
    ]
