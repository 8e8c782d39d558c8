"""The figures: what each axis says, which hyperparameters get one, which trials are drawn."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hpo.results.figures import NA, _axis, history_figure, parallel_axes


def test_parallel_axes_say_what_their_positions_mean() -> None:
    opts, lrs = ["sgd", "adam", "sgd"], [0.1, 1e-4, 1e-3]
    positions, ticks = _axis(opts)
    assert positions == [1.0, 0.0, 1.0] and ticks == [(0.0, "adam"), (1.0, "sgd")]
    positions, ticks = _axis(lrs)  # a 1000x range: log scale, labelled with real values
    assert positions == pytest.approx([1.0, 0.0, 1 / 3]) and ticks[0] == (0.0, "0.0001")
    assert ticks[1] == (0.5, "0.00316 (log)") and ticks[2] == (1.0, "0.1")


def test_a_trial_without_a_value_crosses_an_axis_at_n_a() -> None:
    positions, ticks = _axis([0.9, None, 0.5])
    assert positions == [1.0, NA, 0.0] and ticks[0] == (NA, "n/a")


def test_the_learning_rate_and_momentum_get_axes_a_constant_does_not() -> None:
    """They were left out (drawn as lr_sgd or lr_adaptive, momentum only for sgd and rmsprop,
    so no trial shares them all), while an MLP-only study kept a `family` axis of one value."""
    sgd = {"family": "mlp", "optimizer": "sgd", "lr_sgd": 0.05, "momentum": 0.9, "batch_size": 64}
    adam = {"family": "mlp", "optimizer": "adam", "lr_adaptive": 1e-3, "batch_size": 128}
    rows = [SimpleNamespace(params=p) for p in (sgd, adam, {**sgd, "momentum": 0.5, "lr_sgd": 0.1})]
    assert parallel_axes(rows) == ["batch_size", "lr", "momentum", "optimizer"]


def test_the_history_shows_pruned_trials_too() -> None:
    def trial(number: int, state: str, value: float | None, curve: dict[int, float]) -> SimpleNamespace:
        return SimpleNamespace(number=number, state=state, value=value, curve=curve)

    rows = [
        trial(0, "COMPLETE", 0.9, {1: 0.9}),
        trial(1, "PRUNED", None, {1: 0.4}),
        trial(2, "FAIL", None, {}),
    ]
    ax = history_figure(rows).axes[0]
    plotted = {c.get_label(): [tuple(p) for p in c.get_offsets()] for c in ax.collections}
    assert plotted == {"complete trial": [(0, 90.0)], "pruned (last epoch)": [(1, 40.0)]}
