"""The figures: what each axis says."""

from __future__ import annotations

import pytest


def test_parallel_axes_say_what_their_positions_mean() -> None:
    from types import SimpleNamespace

    from hpo.results.figures import _axis

    rows = [
        SimpleNamespace(params={"opt": o, "lr": lr})
        for o, lr in (("sgd", 0.1), ("adam", 1e-4), ("sgd", 1e-3))
    ]
    positions, ticks = _axis(rows, "opt")
    assert positions == [1.0, 0.0, 1.0] and ticks == [(0.0, "adam"), (1.0, "sgd")]
    positions, ticks = _axis(rows, "lr")  # a 1000x range: log scale, labelled with real values
    assert positions == pytest.approx([1.0, 0.0, 1 / 3]) and ticks[0] == (0.0, "0.0001")
    assert ticks[1] == (0.5, "0.00316 (log)") and ticks[2] == (1.0, "0.1")
