from __future__ import annotations

import pytest
import torch
from torch import nn

from hpo.config import ACTIVATIONS, ModelConfig, parse_int_list
from hpo.core.models import _ACTIVATIONS, build_model, count_parameters
from hpo.errors import ConfigError

X = torch.randn(4, 1, 28, 28)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("family", ["mlp", "cnn"])
def test_every_activation_builds_and_runs(family: str, activation: str) -> None:
    model = build_model(ModelConfig(family=family, activation=activation, batch_norm=True, dropout=0.2))
    assert model(X).shape == (4, 10)


@pytest.mark.parametrize("depth", range(1, 7))
def test_mlp_depths(depth: int) -> None:
    model = build_model(ModelConfig(hidden=(16,) * depth))
    assert sum(isinstance(m, torch.nn.Linear) for m in model.modules()) == depth + 1


def test_seed_001_cnn_is_expressible() -> None:
    cfg = ModelConfig(family="cnn", channels=(10, 20), kernel_size=5, padding="valid", fc_width=0)
    model = build_model(cfg)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(320, 10)]
    # conv1 10*(25+1) + conv2 20*(250+1) + fc 320*10+10
    assert count_parameters(model) == 260 + 5020 + 3210
    assert model(X).shape == (4, 10)


def test_seed_002_mlp_parameter_count() -> None:
    model = build_model(ModelConfig(hidden=(300, 100)))
    assert count_parameters(model) == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10


@pytest.mark.parametrize("blocks", range(1, 5))
def test_cnn_blocks_same_padding(blocks: int) -> None:
    model = build_model(ModelConfig(family="cnn", channels=(8,) * blocks, fc_width=16))
    assert model(X).shape == (4, 10)


@pytest.mark.parametrize("head", ["flatten", "gap"])
@pytest.mark.parametrize("convs", [1, 2, 3])
def test_cnn_convs_per_block_and_heads(convs: int, head: str) -> None:
    cfg = ModelConfig(family="cnn", channels=(4, 8), convs_per_block=convs, head=head, fc_width=0)
    model = build_model(cfg)
    assert model(X).shape == (4, 10)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 2 * convs
    assert model[-1].in_features == (8 if head == "gap" else 8 * 7 * 7)  # 28 -> 14 -> 7 pixels


def test_invalid_architectures_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="convs-per-block"):
        ModelConfig(family="cnn", convs_per_block=4)
    with pytest.raises(ConfigError, match="unknown head"):
        ModelConfig(family="cnn", head="attention")
    with pytest.raises(ConfigError, match="shrink"):  # 2 valid 5x5 convs a block: 28 -> 10 -> 1 -> none
        ModelConfig(family="cnn", channels=(4, 4, 4), kernel_size=5, padding="valid", convs_per_block=2)
    with pytest.raises(ConfigError, match="shrink"):
        ModelConfig(family="cnn", channels=(4, 4, 4), kernel_size=5, padding="valid")
    with pytest.raises(ConfigError, match="1 to 6"):
        ModelConfig(hidden=(8,) * 7)
    with pytest.raises(ConfigError, match="unknown activation"):
        ModelConfig(activation="swish")
    with pytest.raises(ConfigError, match="comma-separated"):
        parse_int_list("300,,x", option="--hidden")
    with pytest.raises(ConfigError, match="positive"):
        parse_int_list("300,-1", option="--hidden")


def _pool_last(model: nn.Sequential) -> nn.Sequential:
    """The textbook order, conv -> act -> pool, from a model built with the pool moved first."""
    layers = list(model)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.MaxPool2d) and type(layers[i + 1]) in _ACTIVATIONS.values():
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "tanh", "sigmoid", "gelu", "silu"])
def test_pooling_before_a_monotonic_activation_changes_nothing(activation: str) -> None:
    """hpo pools before the block's last activation when that one never decreases: outputs and
    gradients must equal the textbook order's, and the weights' names stay (saved checkpoints load)."""
    cfg = ModelConfig(
        family="cnn", channels=(4, 8), convs_per_block=2, batch_norm=True, activation=activation
    )
    model = build_model(cfg).eval()
    reference = _pool_last(model)  # the same module objects, in the textbook order
    moved = [type(m) for m in model] != [type(m) for m in reference]
    assert moved == (activation not in ("gelu", "silu"))  # the two that dip below zero stay put
    x = torch.randn(3, 1, 28, 28, requires_grad=True)
    out, expected = model(x), reference(x)
    assert torch.allclose(out, expected, atol=1e-6)
    (grad,) = torch.autograd.grad(out.sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
    assert [k for k, _ in model.named_parameters()] == [k for k, _ in reference.named_parameters()]


def test_the_served_model_takes_either_pixel_scale_per_image() -> None:
    """0..255 (IDX files, 8-bit PNGs) or 0..1 (ToTensor()), decided per image by its brightest
    pixel, float rounding above 1.0 included: the answer is the same."""
    from hpo.core.models import RawPixelClassifier

    torch.manual_seed(0)
    served = RawPixelClassifier(
        build_model(ModelConfig(hidden=(32,))), mean=0.13, std=0.31, in_shape=(1, 28, 28)
    ).eval()
    raw = torch.rand(4, 28, 28) * 255
    unit = raw / 255
    mixed = torch.stack([raw[0], unit[1], raw[2], unit[3]])
    rounded = unit[:1] / unit[0].max() * 1.0000001  # 0..1 with float rounding at the top
    with torch.inference_mode():
        assert torch.allclose(served(mixed), served(raw), atol=1e-5)
        assert torch.allclose(served(rounded), served(rounded * 255), atol=1e-5)


def test_separable_convs_have_fewer_weights_and_the_footprint_counts_them() -> None:
    """16 -> 32 channels at 3x3: a depthwise 3x3 (16 x 9 weights) and a 1x1 (16 x 32 + 32 biases)
    instead of 32 x (16 x 9 + 1); the network's first conv (one input channel) stays full."""
    from hpo.core.footprint import footprint

    cfg = ModelConfig(family="cnn", channels=(16, 32), conv="separable", head="gap", fc_width=0)
    model = build_model(cfg)
    assert model(X).shape == (4, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.groups) for c in convs] == [
        (1, 16, 3, 1),
        (16, 16, 3, 16),
        (16, 32, 1, 1),
    ]
    assert count_parameters(model) == (16 * 9 + 16) + 16 * 9 + (16 * 32 + 32) + (32 * 10 + 10)
    full = build_model(ModelConfig(family="cnn", channels=(16, 32), head="gap", fc_width=0))
    assert count_parameters(full) == (16 * 9 + 16) + (32 * 16 * 9 + 32) + (32 * 10 + 10)
    size = footprint(cfg)
    assert size.parameters == count_parameters(model)
    # 2 FLOPs a multiply-add: 28x28 first conv, 14x14 after the pool for the depthwise and the 1x1
    assert size.flops_per_image == 2 * (9 * 16 * 784 + 9 * 16 * 196 + 16 * 32 * 196 + 32 * 10)
    with pytest.raises(ConfigError, match="unknown conv"):
        ModelConfig(family="cnn", conv="dilated")


def test_each_model_config_field_is_shared_or_in_one_family_section() -> None:
    """A family's section names the fields only it reads; the rest are every family's (or the data's)."""
    from dataclasses import fields

    from hpo.families import FAMILIES

    shared = {"family", "activation", "dropout", "batch_norm", "in_shape", "classes"}
    sections = [set(f.section) for f in FAMILIES.values()]
    owned = set().union(*sections)
    assert owned | shared == {f.name for f in fields(ModelConfig)} and not owned & shared
    assert FAMILIES["cnn"].section and set(FAMILIES["resnet"].section) <= owned
