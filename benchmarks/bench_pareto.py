"""Multi-objective search quality (issue 23): the Pareto front of accuracy against size or latency
that each way of searching holds after the same wall-clock budget, side by side on one machine,
same data, same (compact) space, same engine:

  hpo              hpo's defaults with `--objective` and `--budget`: the compact space and its warm
                   starts, the rung rule within size classes, the final training;
  hpo-unpruned     the same with `--pruner none`: every trial trains its epochs (what pruning saves);
  optuna-tutorial  Optuna's multi-objective tutorial way: its default sampler (TPE), no pruning
                   (Optuna cannot prune a multi-objective trial), no warm start, `timeout`.

    python benchmarks/bench_pareto.py --data-dir ../shared/datasets --dataset mnist \\
        --objective accuracy,params --minutes 20 --methods hpo hpo-unpruned

Each run: a fresh study in a scratch store; its front, its hypervolume over time and the epochs it
trained; then the test looks: for each `--looks` limit (parameters), the most accurate trial by
validation within it, chosen before any look (the first through the lockbox, the others forced:
the lockbox allows one per study, and none of them chooses anything). Writes
benchmarks/pareto/<dataset>-<objective>-<minutes>min.json and .png, and prints the rows for
benchmarks/QUALITY.md."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_anytime import CAP, machine_label  # beside this script

from hpo.config import DataConfig, SearchConfig
from hpo.results.lockbox import evaluate_test
from hpo.search.pareto import front, hypervolume, most_accurate_within
from hpo.search.run import run_search
from hpo.stores import link
from hpo.stores.runtime import configure
from hpo.stores.workspace import Workspace

METHODS: dict[str, dict[str, Any]] = {
    "hpo": {},
    "hpo-unpruned": {"pruner": "none"},
    "optuna-tutorial": {"sampler": "tpe", "pruner": "none", "warm_start": False},
}
# The hypervolume's reference point: (accuracy, size); a front is measured above and left of it.
REFERENCE_ACCURACY = {"mnist": 0.95, "fashion-mnist": 0.80}
REFERENCE_SIZE = {"params": 1e6, "latency": 10.0, "flops": 1e9}  # parameters, ms, FLOPs per image
OUT = Path(__file__).with_name("pareto")


class Clock:
    """Minutes since the call began at each trial's end, by trial number."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.ended: dict[int, float] = {}

    def started(self, **_: object) -> None: ...
    def trial_started(self, **_: object) -> None: ...
    def progress(self, **_: object) -> None: ...
    def epoch(self, **_: object) -> None: ...

    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None:
        self.ended[row.number] = round((time.monotonic() - self.start) / 60, 3)
        print(
            f"  {self.ended[row.number]:6.1f} min  trial {row.number:>3} {row.state:<8} {row.values}",
            flush=True,
        )


def history(rows: list[Any], ended: dict[int, float], *, reference: tuple[float, float]) -> list[list[float]]:
    """[minutes, epochs trained so far, hypervolume of the front so far] at each trial's end."""
    points, epochs, out = [], 0, []
    for r in sorted((r for r in rows if r.number in ended), key=lambda r: ended[r.number]):
        epochs += len(r.curve)
        if r.state == "COMPLETE" and len(r.values) >= 2:
            points.append((r.values[0], r.values[1]))
        out.append([ended[r.number], epochs, round(hypervolume(points, reference=reference), 5)])
    return out


def looks(
    ws: Workspace, *, rows: list[Any], limits: list[int], cut: bool, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The test look of the most accurate trial within each parameter limit, all chosen first
    (forced after the first, or for a call `cut` at the cap: the lockbox refuses an interrupted one)."""
    chosen = [(limit, most_accurate_within(rows, max_params=limit)) for limit in limits]
    found = []
    for i, (limit, row) in enumerate(chosen):
        if row is None:
            found.append({"limit": limit, "trial": None})
            continue
        report = evaluate_test(
            ws=ws, study="pareto", data_dir=args.data_dir, device=args.device, force=cut or i > 0,
            out_dir=Path(f"look{i}"), pick=row.number,
        )  # fmt: skip
        found.append({
            "limit": limit, "trial": row.number, "params": int(row.attrs[link.PARAMETERS]),
            "val": row.values[0], "test": report.accuracy, "forced": cut or i > 0,
        })  # fmt: skip
    return found


def one_run(*, method: str, args: argparse.Namespace) -> dict[str, Any]:
    seconds = 60 * args.minutes
    limit = {"timeout": seconds} if method == "optuna-tutorial" else {"budget": seconds}
    size = args.objective.split(",")[1]
    reference = (REFERENCE_ACCURACY[args.dataset], REFERENCE_SIZE[size])
    keep = args.keep / method if args.keep else None  # the project stays there, for hpo report
    if keep is not None:
        keep.mkdir(parents=True)  # a fresh folder: refuses one that holds an earlier run
    with contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory(prefix="hpo-") as tmp:
        os.chdir(tmp)
        cfg = SearchConfig(
            study="pareto", storage="sqlite:///studies/hpo.db", trials=10_000, epochs=args.epochs,
            device=args.device, seed=args.seed, objective=args.objective, **limit, **METHODS[method],
        )  # fmt: skip
        clock = Clock()
        timer = threading.Timer(CAP * seconds, os.kill, args=(os.getpid(), signal.SIGINT))
        timer.start()
        data_cfg = DataConfig(dataset=args.dataset, data_dir=args.data_dir, val_size=args.val_size)
        try:
            outcome = run_search(
                cfg=cfg, data_cfg=data_cfg, space=None, observer=clock, command=f"bench_pareto {method}"
            )
        finally:
            timer.cancel()
        wall = (time.monotonic() - clock.start) / 60
        ws = Workspace(storage=cfg.storage)
        rows = ws.study("pareto").rows()
        cut = outcome.stopped == "interrupted"
        tested = looks(ws, rows=rows, limits=args.looks, cut=cut, args=args)
    return {
        "method": method, "wall_min": round(wall, 2), "interrupted": cut,
        "finished": outcome.counts.finished, "complete": outcome.counts.complete,
        "pruned": outcome.counts.pruned,
        "epochs": sum(len(r.curve) for r in rows),
        "front": [
            {"trial": r.number, "val": r.values[0], size: r.values[1], "params": r.attrs.get(link.PARAMETERS),
             "flops": r.attrs.get(link.FLOPS), "cpu_ms": r.attrs.get(link.CPU_LATENCY_MS)}
            for r in front(rows)
        ],
        "history": history(rows, clock.ended, reference=reference),
        "reference": reference, "looks": tested,
    }  # fmt: skip


def epochs_to_reach(result: dict[str, Any], target: float) -> int | None:
    """Epochs a run had trained when its front's hypervolume first reached `target`."""
    return next((int(e) for _, e, hv in result["history"] if hv >= target - 1e-12), None)


def savings(results: list[dict[str, Any]]) -> str:
    """What pruning saved: the epochs hpo trained to reach the unpruned run's final hypervolume,
    against the epochs the unpruned run trained to reach it."""
    by = {r["method"]: r for r in results}
    if not {"hpo", "hpo-unpruned"} <= set(by) or not by["hpo-unpruned"]["history"]:
        return ""
    target = by["hpo-unpruned"]["history"][-1][2]
    pruned, unpruned = epochs_to_reach(by["hpo"], target), epochs_to_reach(by["hpo-unpruned"], target)
    if pruned is None or not unpruned:
        return f"hpo did not reach the unpruned run's hypervolume {target:.4f}"
    return (
        f"to the unpruned run's hypervolume {target:.4f}: hpo trained {pruned} epochs, unpruned "
        f"{unpruned} ({100 * (1 - pruned / unpruned):.0f}% fewer)"
    )


def plot(results: list[dict[str, Any]], *, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = args.objective.split(",")[1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for r in results:
        xs, ys = [p[size] for p in r["front"]], [100 * p["val"] for p in r["front"]]
        left.step(xs, ys, where="post", marker="o", label=r["method"])
        right.step(
            [h[0] for h in r["history"]], [h[2] for h in r["history"]], where="post", label=r["method"]
        )
    left.set_xscale("log")
    left.set_xlabel({"params": "parameters", "latency": "CPU ms, batch 1", "flops": "FLOPs per image"}[size])
    left.set_ylabel("validation accuracy (%)")
    left.set_ylim(100 * REFERENCE_ACCURACY[args.dataset], None)
    left.set_title(f"{args.dataset}: the fronts after {args.minutes:g} min")
    right.set_xlabel("wall-clock minutes")
    right.set_ylabel("hypervolume of the front so far")
    right.set_title(results[0]["machine"] if results else "")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def rows(results: list[dict[str, Any]], *, args: argparse.Namespace) -> str:
    size = args.objective.split(",")[1]
    lines = []
    for r in results:
        front_text = ", ".join(f"{100 * p['val']:.2f}% @ {p[size]:,.4g}" for p in r["front"][-6:])
        tested = "; ".join(
            f"<= {lk['limit']:,}: -" if lk["trial"] is None else
            f"<= {lk['limit']:,}: trial {lk['trial']} ({lk['params']:,} params, val {100 * lk['val']:.2f}%) "
            f"**{100 * lk['test']:.2f}%**{' (forced)' if lk['forced'] else ''}"
            for lk in r["looks"]
        ) or "-"  # fmt: skip
        tested += f" (interrupted at {CAP:g}x the budget)" if r["interrupted"] else ""
        hv = r["history"][-1][2] if r["history"] else 0.0
        lines.append(
            f"| {time.strftime('%Y-%m-%d')} | {r['machine']} | {args.dataset} | {args.objective} | "
            f"{r['method']} | {args.minutes:g} min | {r['wall_min']:.1f} min | "
            f"{r['finished']} ({r['complete']}/{r['pruned']}) | {r['epochs']} | {hv:.4f} | {front_text} | "
            f"{tested} | `{r['command']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    import shlex
    import sys

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--dataset", default="mnist", choices=sorted(REFERENCE_ACCURACY))
    p.add_argument("--objective", default="accuracy,params", choices=["accuracy,params", "accuracy,latency"])
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-size", type=int, default=10_000)
    p.add_argument("--looks", type=int, nargs="*", default=[8_000, 5_000], help="parameter limits")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--keep", type=Path, help="run each way in DIR/WAY and keep its project (for hpo report)")
    p.add_argument(
        "--merge", nargs="+", type=Path, help="plot and tabulate these runs' JSON files together (ways run "
        "side by side in separate processes, e.g. each pinned to one core with taskset), run nothing",
    )  # fmt: skip
    args = p.parse_args()
    args.data_dir = str(Path(args.data_dir).resolve())
    args.keep = args.keep.resolve() if args.keep else None
    OUT.mkdir(exist_ok=True)
    stem = f"{args.dataset}-{args.objective.replace(',', '-')}-{args.minutes:g}min"
    if args.merge:
        results = [r for path in args.merge for r in json.loads(path.read_text())]
    else:
        results = run_all(args, command="python " + shlex.join(["benchmarks/bench_pareto.py", *sys.argv[1:]]))
        stem += "-" + "-".join(args.methods)
        (OUT / f"{stem}.json").write_text(json.dumps(results, indent=1))
    plot(results, args=args, path=OUT / f"{stem}.png")
    print(rows(results, args=args))
    print(savings(results))


def run_all(args: argparse.Namespace, *, command: str) -> list[dict[str, Any]]:
    configure()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # see bench_anytime: a background start
    cores = len(os.sched_getaffinity(0))  # a taskset pin shows here
    machine = f"{machine_label().rsplit(',', 1)[0]}, {cores} of {os.cpu_count()} cores"
    results = []
    for method in args.methods:
        print(f"{args.dataset} {args.objective} {method}", flush=True)
        results.append({**one_run(method=method, args=args), "command": command, "machine": machine})
    return results


if __name__ == "__main__":
    main()
