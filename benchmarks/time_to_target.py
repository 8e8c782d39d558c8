"""Time-to-target between two ways of searching, from `bench_anytime.py`'s JSON files: for each
seed both ran, the baseline's best validation accuracy and when it first held it, when the other
way first held as much, and the ratio (baseline's minutes / the other's). Both curves are read:
trial ends (a trial counts when it ends) and epoch ends (any epoch of any trial, a running one's
included). The median ratio over the seeds is printed last.

    python benchmarks/time_to_target.py \\
        --baseline benchmarks/anytime/fashion-mnist-40min-optuna-doc-2026-12-05.json \\
        --other benchmarks/anytime/fashion-mnist-40min-hpo-2026-12-05.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

CURVES = {"trial ends": "curve", "epoch ends": "epoch_curve"}


def first(points: list[list[float]], value: float) -> float | None:
    """Minutes at which a curve of (minutes, best so far) first holds `value` (None: never)."""
    return next((m for m, v in points if v >= value), None)


def ratio(baseline: dict[str, Any], other: dict[str, Any], *, key: str) -> tuple[float, float, float | None]:
    """(the baseline's best, its minutes to it, the other's minutes to it) on one curve."""
    points = baseline[key]
    best = max((v for _, v in points), default=0.0)
    return best, first(points, best) or float("inf"), first(other[key], best) if best else None


def seeds(base: dict[int, Any], other: dict[int, Any], key: str) -> list[int]:
    """The seeds both ways ran with this curve recorded (runs before the epoch curve have none)."""
    return sorted(s for s in base.keys() & other.keys() if key in base[s] and key in other[s])


def one_seed(base: dict[str, Any], other: dict[str, Any], *, key: str, label: str) -> float:
    """Print one seed's comparison; its ratio (inf: the baseline held nothing; 0: the other never
    held the baseline's best)."""
    best, base_min, other_min = ratio(base, other, key=key)
    if best == 0.0:
        print(f"{label}: the baseline held no model; ratio inf")
        return float("inf")
    shown = "never" if other_min is None else f"at {other_min:.1f} min"
    x = base_min / other_min if other_min else 0.0
    print(f"{label}: baseline {100 * best:.2f}% at {base_min:.1f} min, the other {shown}, ratio {x:.1f}x")
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", type=Path, nargs="+", required=True, help="the way to beat (JSON files)")
    p.add_argument("--other", type=Path, nargs="+", required=True, help="the way measured against it")
    args = p.parse_args()
    base = {r["seed"]: r for path in args.baseline for r in json.loads(path.read_text())}
    other = {r["seed"]: r for path in args.other for r in json.loads(path.read_text())}
    for label, key in CURVES.items():
        ratios = [
            one_seed(base[seed], other[seed], key=key, label=f"{label}: seed {seed}")
            for seed in seeds(base, other, key)
        ]
        if ratios:
            print(f"{label}: median ratio {statistics.median(ratios):.1f}x over {len(ratios)} seeds")


if __name__ == "__main__":
    main()
