"""Anytime search quality: the best validation accuracy each way of searching holds at every moment
of the same wall-clock budget, side by side on one machine, same data, same space, same engine:

  (a) optuna-doc   the Optuna documentation's way: TPE + MedianPruner, fixed epochs, `timeout`
                   (no new trial after it; the trial in flight runs to its end), no warm start;
  (b) random-asha  random search with ASHA (what Ray Tune recommends): RandomSampler +
                   SuccessiveHalvingPruner (rungs at epochs 1, 3, 9), `timeout`, no warm start;
                   neither (a) nor (b) has hpo's early look (it is recorded, never acted on);
  (c) hpo          hpo's defaults with `--budget`: warm starts, the early look, cost-aware skips,
                   the final training (a fresh store each run: no earlier study's best to start from).

    python benchmarks/bench_anytime.py --data-dir ../shared/datasets --dataset fashion-mnist \\
        --minutes 12 --seeds 0 1

Each run: a fresh study in a scratch store, then one test look (the lockbox) at its best trial by
validation. Writes benchmarks/anytime/<dataset>.json (the curves) and .png (best validation
accuracy against minutes), and prints the table rows for benchmarks/QUALITY.md."""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_epoch import machine  # beside this script

from hpo.config import DataConfig, SearchConfig
from hpo.results.lockbox import evaluate_test
from hpo.search import budget, early_look
from hpo.search.run import run_search
from hpo.stores import link
from hpo.stores.runtime import configure
from hpo.stores.workspace import Workspace

METHODS: dict[str, dict[str, Any]] = {
    "optuna-doc": {"sampler": "tpe", "pruner": "median", "warm_start": False},
    "random-asha": {"sampler": "random", "pruner": "sha", "warm_start": False},
    "hpo": {},  # SearchConfig's defaults
    # hpo with each pruner, to choose its default (the rest of its defaults as they are)
    "hpo-median": {"pruner": "median"},
    "hpo-sha": {"pruner": "sha"},
}
# The ways a user would run instead have no early look (hpo's own rung below epoch 1): it is taken
# and recorded, never acted on.
WITHOUT_EARLY_LOOK = ("optuna-doc", "random-asha")
THRESHOLDS = {"fashion-mnist": (0.88, 0.90, 0.91, 0.92), "mnist": (0.98, 0.99, 0.993, 0.995)}
OUT = Path(__file__).with_name("anytime")
# A `timeout` call's trial in flight runs on past the timeout (one sampled CNN took an hour); the
# benchmark interrupts a call at CAP x its budget, as a user's Ctrl-C would, and says so.
CAP = 1.5
DEFAULT_PEERS = early_look.MIN_PEERS


@dataclass
class Curve:
    """Minutes since the call began -> the study's best validation accuracy, at each trial's end;
    and (`epochs`) the best validation accuracy of any epoch of any trial so far, at each epoch's
    end (the same for every way: a running trial's best epoch, before the trial counts)."""

    start: float = field(default_factory=time.monotonic)
    points: list[tuple[float, float]] = field(default_factory=list)
    epochs: list[tuple[float, float]] = field(default_factory=list)

    predicted_min: float | None = None  # when the start estimate said the call would end

    def started(self, *, estimate: Any, deadline: float | None, **_: object) -> None:
        """The end the start estimate gives (`cli.render.estimate_line`): the budget left when the
        trials would take longer, else their estimate; minutes since the call began."""
        if estimate is None:
            return
        left = estimate.seconds if deadline is None else min(estimate.seconds, deadline - time.time())
        self.predicted_min = round((time.monotonic() - self.start + left) / 60, 2)

    def trial_started(self, **_: object) -> None: ...
    def progress(self, **_: object) -> None: ...
    def epoch(self, *, metrics: Any, **_: object) -> None:
        so_far = max(self.epochs[-1][1] if self.epochs else 0.0, float(metrics.val_accuracy))
        self.epochs.append((round((time.monotonic() - self.start) / 60, 3), so_far))

    def trial_finished(self, *, row: Any, counts: Any, best: Any) -> None:
        minutes = (time.monotonic() - self.start) / 60
        value = float(getattr(best, "value", 0.0) or 0.0)
        self.points.append((round(minutes, 3), value))
        print(f"  {minutes:6.1f} min  trial {row.number:>3} {row.state:<8} best {value:.4f}", flush=True)

    def reached(self, threshold: float, *, any_epoch: bool = False) -> float | None:
        return next((m for m, v in (self.epochs if any_epoch else self.points) if v >= threshold), None)


def one_run(*, method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One search in a scratch folder, then its one test look."""
    seconds = 60 * args.minutes
    limit = {"budget": seconds} if method.startswith("hpo") else {"timeout": seconds}
    with tempfile.TemporaryDirectory(prefix="hpo-anytime-") as tmp:
        os.chdir(tmp)
        cfg = SearchConfig(
            study="anytime",
            storage="sqlite:///studies/hpo.db",
            trials=10_000,  # the clock ends every call
            epochs=args.epochs,
            device=args.device,
            seed=seed,
            **limit,
            **METHODS[method],
        )
        curve = Curve()
        early_look.MIN_PEERS = 10**9 if method in WITHOUT_EARLY_LOOK else DEFAULT_PEERS
        # A real SIGINT, as a Ctrl-C would send (`_thread.interrupt_main` did not stop a run here).
        timer = threading.Timer(CAP * seconds, os.kill, args=(os.getpid(), signal.SIGINT))
        timer.start()
        try:
            outcome = run_search(
                cfg=cfg,
                data_cfg=DataConfig(dataset=args.dataset, data_dir=args.data_dir),
                space=None,
                observer=curve,
                command=f"bench_anytime {method} seed {seed}",
            )
        finally:
            timer.cancel()
        wall = (time.monotonic() - curve.start) / 60
        ws = Workspace(storage=cfg.storage)
        capped = outcome.stopped == "interrupted"  # the lockbox needs --force for a cut search
        test = None
        if outcome.best is not None:
            test = evaluate_test(
                ws=ws,
                study="anytime",
                data_dir=args.data_dir,
                device=args.device,
                force=capped,
                out_dir=Path("r"),
            ).accuracy
        rows = ws.study("anytime").rows()
    errors = [
        float(r.attrs[link.MEASURED_EPOCH_S]) / float(r.attrs[link.PREDICTED_EPOCH_S])
        for r in rows
        if r.attrs.get(link.MEASURED_EPOCH_S) and r.attrs.get(link.PREDICTED_EPOCH_S)
    ]
    best = outcome.best
    trained = [r for r in rows if r.state in ("COMPLETE", "PRUNED") and not budget.is_skip(r)]
    return {
        "method": method,
        "seed": seed,
        "wall_min": round(wall, 2),
        "finished": outcome.counts.finished,
        "complete": outcome.counts.complete,
        "pruned": outcome.counts.pruned,
        "best_val": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_params": best.params if best else None,
        "best_kind": kind(best),
        "trained": len(trained),
        "predicted_min": curve.predicted_min,
        "test": test,
        "capped": capped,
        "curve": curve.points,
        "reached": {str(t): curve.reached(t) for t in THRESHOLDS[args.dataset]},
        "epoch_curve": curve.epochs,
        "reached_any_epoch": {str(t): curve.reached(t, any_epoch=True) for t in THRESHOLDS[args.dataset]},
        "cost_ratios": [round(e, 3) for e in errors],
        "trials": [trial_line(r) for r in rows],
    }


def trial_line(row: Any) -> dict[str, Any]:
    """One trial as the JSON keeps it: which kind it was, how it ended, its value and epochs, so a
    note like "trial 25 was the final" can be checked after the scratch store is gone."""
    return {
        "number": row.number,
        "state": row.state,
        "kind": kind(row),
        "warm_start": row.attrs.get(link.WARM_START),
        "value": row.value,
        "epochs": len(row.curve),
        "epoch_s": row.attrs.get(link.MEASURED_EPOCH_S),
        "seconds": row.seconds,
        "why": str(row.attrs.get(link.FAIL_REASON, ""))[:160],
        "params": row.params,
    }


def plot(results: list[dict[str, Any]], *, dataset: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "optuna-doc": "tab:blue",
        "random-asha": "tab:orange",
        "hpo": "tab:green",
        "hpo-median": "tab:olive",
        "hpo-sha": "tab:green",
    }
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        if not r["curve"]:
            continue
        minutes = [0.0] + [m for m, _ in r["curve"]] + [r["wall_min"]]
        values = [None] + [v for _, v in r["curve"]] + [r["curve"][-1][1]]
        ax.step(
            minutes, values, where="post", color=colors[r["method"]], label=f"{r['method']} seed {r['seed']}"
        )
    ax.set_xlabel("wall-clock minutes")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(f"{dataset}: anytime search quality ({machine_label()})")
    low = min((v for r in results for _, v in r["curve"] if v > 0), default=0.0)
    ax.set_ylim(max(low, 0.8 if dataset == "fashion-mnist" else 0.95), None)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def kind(best: Any) -> str:
    """Which kind of trial the best (or any) is: a warm start (hpo's points or an earlier study's best), a
    sampled one, or the --budget's final training (of which kind of trial's configuration)."""
    if best is None:
        return "-"
    if best.attrs.get(link.FINAL_OF) is not None:
        return f"final training of trial {best.attrs[link.FINAL_OF]}"
    return "warm start" if best.attrs.get(link.WARM_START) else "sampled"


def machine_label() -> str:
    import torch

    return machine(torch.device("cpu")).split(";")[0]


def rows(results: list[dict[str, Any]], *, args: argparse.Namespace, command: str) -> str:
    lines = []
    for r in results:
        reached = ", ".join(
            f"{100 * float(t):g}%: {'-' if m is None else f'{m:.1f}'}" for t, m in r["reached"].items()
        )
        within = sum(abs(e - 1) <= 0.3 for e in r["cost_ratios"])
        test = "-" if r["test"] is None else f"**{100 * r['test']:.2f}%**"
        if r["capped"]:
            test += f" (interrupted at {CAP:g}x the budget)"
        lines.append(
            f"| {time.strftime('%Y-%m-%d')} | {machine_label()} | {args.dataset} | {r['method']} | "
            f"{r['seed']} | {args.minutes:g} min | {r['wall_min']:.1f} min | "
            f"{r['finished']} ({r['complete']}/{r['pruned']}) | "
            f"{100 * (r['best_val'] or 0):.2f}% | {test} | {reached} | "
            f"{within}/{len(r['cost_ratios'])} | {r.get('trained', '-')} | {r.get('best_kind', '-')} | "
            f"{estimate_text(r)} | `{command}` |"
        )
    return "\n".join(lines)


def estimate_text(r: dict[str, Any]) -> str:
    """The start estimate's end against the wall time, as a signed share of the wall time (a
    `timeout` call's estimate is of its 10,000 trials: not a prediction of when it ends)."""
    if r.get("predicted_min") is None or not r["method"].startswith("hpo"):
        return "-"
    return f"{r['predicted_min']:.1f} min ({100 * (r['predicted_min'] / r['wall_min'] - 1):+.0f}%)"


def main() -> None:
    import shlex
    import sys

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(THRESHOLDS))
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    default = ["optuna-doc", "random-asha", "hpo"]
    p.add_argument("--methods", nargs="+", default=default, choices=list(METHODS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--tag", default="", help="appended to the output files' names (runs kept apart)")
    args = p.parse_args()
    args.data_dir = str(Path(args.data_dir).resolve())
    command = "python " + shlex.join(["benchmarks/bench_anytime.py", *sys.argv[1:]])
    configure()
    # Started in the background (nohup ... &), a process inherits SIGINT ignored, and Python then
    # leaves it so: the cap's SIGINT (and a Ctrl-C) would do nothing. Take Python's own handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    OUT.mkdir(exist_ok=True)
    results = []
    for seed in args.seeds:
        for method in args.methods:  # interleaved, so a drift in the machine's speed hits all
            print(f"{args.dataset} {method} seed {seed}", flush=True)
            results.append(one_run(method=method, seed=seed, args=args))
            stem = f"{args.dataset}-{args.minutes:g}min"
            if args.methods != default:  # ways run side by side in separate processes keep apart
                stem += "-" + "-".join(args.methods)
            stem += f"-{args.tag}" if args.tag else ""
            (OUT / f"{stem}.json").write_text(json.dumps(results, indent=1))
    plot(results, dataset=args.dataset, path=OUT / f"{stem}.png")
    print(rows(results, args=args, command=command))


if __name__ == "__main__":
    main()
