"""The search space: sampling, replaying recorded params, restricting, its JSON form."""

from __future__ import annotations

from typing import Any

import pytest

from hpo.config import OPTIMIZERS, ModelLimits
from hpo.errors import ConfigError
from hpo.search.space import (
    COMPACT_SPACE,
    DEFAULT_SPACE,
    Choice,
    Range,
    config_from_params,
    default_space,
    restrict_family,
    sample,
    space_from_json,
    space_to_json,
    stretched,
)
from hpo.search.space_file import parse_space


class FakeTrial:
    """Records suggest_* calls and answers with the lowest choice / the low end of a range."""

    def __init__(self) -> None:
        self.asked: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.asked[name] = choices[-1]
        return choices[-1]

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        self.asked[name] = high
        return high

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        self.asked[name] = low
        return low


def test_sample_draws_conditional_parameters_only_where_they_apply() -> None:
    mlp = restrict_family(parse_space({"optimizer": ["adam"], "schedule": ["cosine"]}), "mlp")
    trial = FakeTrial()
    cfg = sample(trial, mlp)
    assert cfg.model.family == "mlp" and len(cfg.model.hidden) == 3  # mlp_layers high = 3
    assert {"mlp_width_0", "mlp_width_1", "mlp_width_2"} <= set(trial.asked)
    assert "momentum" not in trial.asked and "gamma" not in trial.asked  # adam, no exponential
    assert not any(k.startswith("cnn_") for k in trial.asked)
    cnn = restrict_family(parse_space({"optimizer": ["sgd"], "schedule": ["exponential"]}), "cnn")
    trial = FakeTrial()
    cfg = sample(trial, cnn)
    assert cfg.model.family == "cnn" and cfg.model.padding == "same" and len(cfg.model.channels) == 3
    assert trial.asked["momentum"] == 0.0 and cfg.optim.gamma == DEFAULT_SPACE["gamma"].low  # type: ignore[union-attr]


def test_config_from_params_replays_what_sample_drew() -> None:
    trial = FakeTrial()
    drawn = sample(trial, restrict_family(DEFAULT_SPACE, "cnn"))
    assert config_from_params(trial.asked) == drawn
    assert config_from_params({"family": "mlp", "activation": "relu"}) is None  # cut short


def test_restrict_family_and_json_form() -> None:
    assert restrict_family(DEFAULT_SPACE, "cnn")["family"] == Choice(("cnn",))
    assert restrict_family(DEFAULT_SPACE, "any") is DEFAULT_SPACE
    with pytest.raises(ConfigError, match="excluded by the space file"):
        restrict_family(parse_space({"family": ["mlp"]}), "cnn")
    as_json = space_to_json(DEFAULT_SPACE)
    assert as_json["lr_adaptive"] == {"low": 1e-4, "high": 1e-2, "log": True, "integer": False}
    assert as_json["optimizer"] == {"choices": list(OPTIMIZERS)}


@pytest.mark.parametrize(
    ("optimizer", "key"), [("sgd", "lr_sgd"), ("adam", "lr_adaptive"), ("rmsprop", "lr_adaptive")]
)
def test_each_optimizer_family_draws_its_own_learning_rate_range(optimizer: str, key: str) -> None:
    trial = FakeTrial()
    cfg = sample(trial, parse_space({"optimizer": [optimizer]}))
    assert key in trial.asked and {"lr_sgd", "lr_adaptive", "lr"}.isdisjoint(set(trial.asked) - {key})
    assert cfg.optim.lr == DEFAULT_SPACE[key].low  # type: ignore[union-attr]


def test_cnn_blocks_of_two_convs_and_a_gap_head_are_drawn() -> None:
    trial = FakeTrial()  # last choice / high end: 2 convs per block, 128 channels, gap head
    cfg = sample(trial, restrict_family(DEFAULT_SPACE, "cnn"))
    assert cfg.model.convs_per_block == 2 and cfg.model.head == "gap" and cfg.model.channels[0] == 128


def test_trials_of_studies_made_before_the_split_still_replay() -> None:
    """Params recorded under the single `lr` key and without the CNN keys added since."""
    old = {"family": "cnn", "activation": "relu", "dropout": 0.1, "batch_norm": True, "cnn_blocks": 1,
           "cnn_channels_0": 32, "cnn_kernel": 3, "cnn_fc_width": 0, "optimizer": "adam", "lr": 0.002,
           "weight_decay": 1e-5, "schedule": "none", "batch_size": 64}  # fmt: skip
    cfg = config_from_params(old)
    assert cfg is not None and cfg.optim.lr == 0.002 and cfg.model.convs_per_block == 1
    assert cfg.model.head == "flatten" and cfg.augment == "none"


def test_a_recorded_space_comes_back_as_it_was_sampled() -> None:
    narrowed = parse_space({"optimizer": ["sgd"], "batch_size": [64], "cnn_head": ["gap"]})
    assert space_from_json(space_to_json(narrowed)) == narrowed
    legacy = {k: v for k, v in space_to_json(DEFAULT_SPACE).items() if k not in ("lr_sgd", "lr_adaptive")}
    legacy = {**legacy, "lr": {"low": 1e-4, "high": 0.3, "log": True, "integer": False}}
    del legacy["cnn_convs"], legacy["augment"]
    back = space_from_json(legacy)
    assert back["lr_sgd"] == back["lr_adaptive"] == Range(1e-4, 0.3, log=True)
    assert back["cnn_convs"] == Choice((1,)) and back["augment"] == Choice(("none",))  # as trained
    assert set(back) == set(DEFAULT_SPACE)


def test_a_recorded_space_lists_only_what_it_can_draw() -> None:
    from hpo.search.space import DEFAULT_SPACE, restrict_family, space_to_json
    from hpo.search.space_extent import drawable, plain_params

    mlp = drawable(space_to_json(restrict_family(DEFAULT_SPACE, "mlp")))
    assert "mlp_width" in mlp and not any(name.startswith("cnn_") for name in mlp)
    assert set(drawable(space_to_json(DEFAULT_SPACE))) == set(DEFAULT_SPACE)  # the default draws all
    assert plain_params({"lr_adaptive": 0.001, "optimizer": "adam"}) == {"lr": 0.001, "optimizer": "adam"}


class LowTrial(FakeTrial):
    """Answers with the first choice and the low end of every range: the smallest model."""

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.asked[name] = choices[0]
        return choices[0]

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        self.asked[name] = low
        return low


def test_a_search_for_small_models_draws_from_the_compact_space() -> None:
    from hpo.core.footprint import footprint
    from hpo.search.warm_start import points_for

    assert default_space(objective="accuracy", limits=ModelLimits()) is DEFAULT_SPACE
    assert default_space(objective="accuracy,params", limits=ModelLimits()) is COMPACT_SPACE
    assert default_space(objective="accuracy", limits=ModelLimits(max_params=8_000)) is COMPACT_SPACE
    assert set(COMPACT_SPACE) == set(DEFAULT_SPACE)  # the same keys: a recorded one replays
    smallest = sample(LowTrial(), restrict_family(COMPACT_SPACE, "cnn")).model
    assert (smallest.channels, smallest.head, smallest.conv) == ((4, 4), "gap", "full")
    assert footprint(smallest).parameters == 238  # (36 + 4) + (144 + 4) + (40 + 10)
    assert footprint(sample(LowTrial(), restrict_family(COMPACT_SPACE, "mlp")).model).parameters == 6_370
    assert sample(FakeTrial(), COMPACT_SPACE).model.conv == "separable"  # the last choice
    assert sample(FakeTrial(), DEFAULT_SPACE).model.conv == "full"  # the default never draws it
    # Each space's warm starts are its own: the compact nets, 7,154 and 3,306 parameters.
    compact = points_for(COMPACT_SPACE, limit=10)
    assert list(compact) == ["tiny-cnn-gap", "separable-cnn-gap"]
    sizes = [footprint(config_from_params(p).model).parameters for p in compact.values()]  # type: ignore[union-attr]
    assert sizes == [7_154, 3_306]
    assert list(points_for(DEFAULT_SPACE, limit=10)) == [
        "textbook-mlp",
        "wide-mlp-shift",
        "small-cnn-quick",
        "small-cnn-affine",
    ]
    narrowed = parse_space({"cnn_conv": ["separable"]}, base=COMPACT_SPACE)
    assert narrowed["cnn_conv"] == Choice(("separable",))
    assert narrowed["cnn_channels"] == COMPACT_SPACE["cnn_channels"]  # the rest: the base's
    with pytest.raises(ConfigError, match="cnn_conv cannot be 'dilated'"):
        parse_space({"cnn_conv": ["dilated"]})


def test_a_longer_schedule_stretches_an_exponential_decay() -> None:
    """A 10-epoch configuration at gamma 0.64 trained for 20 epochs decays at 0.8 an epoch, as
    much in all; at most the space's high end; cosine, or a space whose gamma is a Choice, as it was."""
    exp = {"schedule": "exponential", "gamma": 0.64, "lr_sgd": 0.1}
    longer = stretched(exp, space=DEFAULT_SPACE, schedule=10, epochs=20)
    assert longer == {**exp, "gamma": pytest.approx(0.8)} and exp["gamma"] == 0.64
    assert stretched(exp, space={"gamma": Range(0.5, 0.75)}, schedule=10, epochs=20)["gamma"] == 0.75
    assert stretched(exp, space={"gamma": Choice((0.64,))}, schedule=10, epochs=20) == exp
    cosine = {"schedule": "cosine", "gamma": 0.64}
    assert stretched(cosine, space=DEFAULT_SPACE, schedule=10, epochs=20) == cosine
