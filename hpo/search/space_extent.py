"""What a search space reaches, for the results: the parameters a recorded space can draw, the
largest model of each family it allows, and a trial's parameters under one name each."""

from __future__ import annotations

from typing import Any

from hpo.config import ADAPTIVE_OPTIMIZERS, FAMILIES, OPTIMIZERS, ModelConfig
from hpo.search.space import Choice, Range, Space, Spec


def drawable(raw: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a recorded space (`space_to_json`) that some trial of it can draw: an
    MLP-only space draws no `cnn_*`, a space without sgd no `lr_sgd`, and so on."""
    choices = {name: set(spec.get("choices", ())) for name, spec in raw.items()}
    families, optimizers = choices.get("family", set(FAMILIES)), choices.get("optimizer", set(OPTIMIZERS))
    unused = set()
    if "mlp" not in families:
        unused |= {n for n in raw if n.startswith("mlp_")}
    if "cnn" not in families:
        unused |= {n for n in raw if n.startswith("cnn_")}
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


def _most(spec: Spec) -> Any:
    return spec.high if isinstance(spec, Range) else max(spec.choices)


def largest_models(space: Space) -> list[ModelConfig]:
    """The largest model of each family the space can draw (most layers, widest, biggest kernel,
    flattened head): if one of these cannot fit a device, the space asks for what cannot run."""
    found = []
    families = space["family"].choices if isinstance(space["family"], Choice) else FAMILIES
    if "mlp" in families:
        layers, width = int(_most(space["mlp_layers"])), int(_most(space["mlp_width"]))
        found.append(ModelConfig(family="mlp", hidden=(width,) * layers, batch_norm=True))
    if "cnn" in families:
        blocks, channels = int(_most(space["cnn_blocks"])), int(_most(space["cnn_channels"]))
        heads = space["cnn_head"]
        head = "flatten" if not isinstance(heads, Choice) or "flatten" in heads.choices else "gap"
        found.append(
            ModelConfig(
                family="cnn",
                channels=(channels,) * blocks,
                convs_per_block=int(_most(space["cnn_convs"])),
                kernel_size=int(_most(space["cnn_kernel"])),
                head=head,
                fc_width=int(_most(space["cnn_fc_width"])),
                batch_norm=True,
            )
        )
    return found
