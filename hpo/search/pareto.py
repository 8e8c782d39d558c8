"""Multi-objective studies (`--objective accuracy,params|latency|flops`): the Pareto front, the
choice of one point on it, and the rung rule that prunes their trials, which Optuna cannot (its
`Trial.report` refuses multi-objective trials, optuna/optuna#3450).

The rung rule: at epochs 1, 3 and 9 (a reduction factor of 3, as in ASHA), a trial stops when its
validation accuracy is not in the top third of the trials of its size class that reached that
epoch, itself included (with fewer than three, it must be the best of them), and one of them, no
larger, was more accurate there (it is dominated at that rung). A size class is a half-decade of
the size objective (e.g. 1,000-3,161 parameters, 3,162-9,999, ...). A trial's size is fixed before
it trains, so within its class accuracy is the one objective still open: a small model is judged
against small models, and one smaller than every more accurate peer goes on, so the front's small
end is not pruned away by the accuracy of larger ones (a 3,306-parameter warm start was stopped
at epoch 1 by a 7,154-parameter one of its class before that second condition)."""

from __future__ import annotations

import math

from hpo.stores import link
from hpo.stores.optuna import TrialRow

RUNGS = (1, 3, 9)  # epochs at which a trial is judged
REDUCTION = 3  # the top 1/REDUCTION of a rung goes on
CLASSES_PER_DECADE = 2


def size_class(value: float) -> int:
    return math.floor(CLASSES_PER_DECADE * math.log10(max(value, 1e-12)))


def rung_reason(
    *, epoch: int, accuracy: float, size: float, number: int, rows: list[TrialRow], attr: str
) -> str:
    """Why trial `number` (its `size` under attribute `attr`) stops after `epoch` ("" to go on)."""
    if epoch not in RUNGS:
        return ""
    peers = [
        (float(r.attrs[attr]), r.curve[epoch], r.number)
        for r in rows
        if r.number != number and epoch in r.curve and r.attrs.get(attr) is not None
    ]
    ranked = sorted(
        [acc for s, acc, _ in peers if size_class(s) == size_class(size)] + [accuracy], reverse=True
    )
    keep = max(1, len(ranked) // REDUCTION)
    if accuracy >= ranked[keep - 1]:
        return ""
    better = [n for s, acc, n in peers if s <= size and acc > accuracy]  # no larger and more accurate
    if not better:  # the smallest of its accuracy so far: a point the front may need
        return ""
    return (
        f"rung {epoch}: {100 * accuracy:.2f}% validation accuracy is not in the top {keep} of the "
        f"{len(ranked)} trials of its size class at epoch {epoch}, and trial {min(better)}, no larger, "
        "was more accurate there"
    )


def front(rows: list[TrialRow]) -> list[TrialRow]:
    """The complete trials that no other beats on every objective (higher accuracy, lower size),
    smallest first. Of trials with equal values, the first one stands for them."""
    complete = [r for r in rows if r.state == link.COMPLETE and len(r.values) >= 2]

    def beats(b: TrialRow, a: TrialRow) -> bool:
        at_least = b.values[0] >= a.values[0] and all(
            x <= y for x, y in zip(b.values[1:], a.values[1:], strict=True)
        )
        return at_least and (b.values != a.values or b.number < a.number)

    kept = [a for a in complete if not any(beats(b, a) for b in complete if b is not a)]
    return sorted(kept, key=lambda r: (r.values[1], -r.values[0]))


def most_accurate_within(rows: list[TrialRow], *, max_params: int) -> TrialRow | None:
    """The complete trial of highest validation accuracy with at most `max_params` parameters."""
    fitting = [
        r
        for r in rows
        if r.state == link.COMPLETE
        and r.attrs.get(link.PARAMETERS) is not None
        and int(r.attrs[link.PARAMETERS]) <= max_params
    ]
    return max(fitting, key=lambda r: (r.value or 0.0, -r.number)) if fitting else None


def hypervolume(points: list[tuple[float, float]], *, reference: tuple[float, float]) -> float:
    """The area that (accuracy, size) `points` dominate above and left of `reference`, with size in
    decades (log10): accuracy is maximized, size minimized, and a model ten times smaller counts
    the same at any size. Points beyond the reference add nothing. One number to compare two fronts
    of the same objectives under the same reference: the larger, the better."""
    ref_accuracy, ref_size = reference[0], math.log10(reference[1])
    area, best = 0.0, ref_accuracy
    for accuracy, size in sorted(points, key=lambda p: (p[1], -p[0])):  # smallest first
        if accuracy > best and math.log10(size) < ref_size:
            area += (ref_size - math.log10(size)) * (accuracy - best)  # the strip it adds
            best = accuracy
    return area
