"""Search quality: a fixed-budget `hpo search` in a scratch store, then the best trial's one test
look through the lockbox, appended as a row of benchmarks/QUALITY.md beside the literature.

    python benchmarks/bench_quality.py --data-dir ../shared/datasets --model mlp --trials 30 --epochs 10
    python benchmarks/bench_quality.py --data-dir ../shared/datasets --model cnn --timeout 3600

The test split is read once, after the search, for the trial the validation split chose."""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from hpo.cli.render import config_text
from hpo.config import DataConfig, SearchConfig
from hpo.results.lockbox import evaluate_test
from hpo.search.run import run_search
from hpo.stores.runtime import configure
from hpo.stores.workspace import Workspace

HEADER = """# Search quality

Rows are appended by `benchmarks/bench_quality.py` (the command is in each row): a fresh study
in a scratch store, the given budget, then one look at the official test split for the best
trial by validation accuracy. Literature anchors (official test split):

| model | MNIST | Fashion-MNIST |
|---|---|---|
| MLP 784-300-100-10 (LeNet-300-100) | 98.36% | ~90% |
| LeNet-5 | 99.2% | |
| single CNN with rotation/translation augmentation | 99.6–99.7% | 92.5–93.5% (small CNNs) |
| ensemble of 3 CNNs | 99.87% | |

| date | machine | dataset | model | budget | finished (complete/pruned) | wall | best val | **test** \
| best trial | command |
|---|---|---|---|---|---|---|---|---|---|---|
"""


class Lines:
    """Prints a line per finished trial, so a long benchmark shows progress."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def started(self, **_: object) -> None: ...
    def trial_started(self, **_: object) -> None: ...
    def epoch(self, **_: object) -> None: ...

    def trial_finished(self, *, row: object, counts: object, best: object) -> None:
        value = getattr(best, "value", None) or 0.0
        minutes = (time.monotonic() - self.start) / 60
        number, state = getattr(row, "number", "?"), getattr(row, "state", "")
        print(f"{minutes:6.1f} min  trial {number:>3} {state:<8}  best {value:.4f}", flush=True)


def main(args: argparse.Namespace, command: str) -> str:
    configure()
    data_dir = str(Path(args.data_dir).resolve())
    with tempfile.TemporaryDirectory(prefix="hpo-quality-") as tmp:
        os.chdir(tmp)
        cfg = SearchConfig(
            study="quality",
            storage="sqlite:///studies/hpo.db",
            trials=args.trials,
            epochs=args.epochs,
            timeout=args.timeout,
            device=args.device,
            seed=args.seed,
            model=args.model,
            jobs=args.jobs,
        )
        data_cfg = DataConfig(dataset=args.dataset, data_dir=data_dir)
        start = time.monotonic()
        outcome = run_search(
            cfg=cfg,
            data_cfg=data_cfg,
            space=None,  # hpo's default space, restricted to --model
            observer=Lines(),
            command=command,
        )
        wall = time.monotonic() - start
        ws = Workspace(storage=cfg.storage)
        # A budget that ends with fewer complete trials than --ensemble still gets its one look,
        # with the ensemble of those it has (or none): the run's result is never thrown away.
        members = min(args.ensemble, outcome.counts.complete)
        test = evaluate_test(
            ws=ws,
            study="quality",
            data_dir=data_dir,
            device=args.device,
            force=False,
            out_dir=Path("r"),
            ensemble=members if members > 1 else 1,
        )
    best = outcome.best
    assert best is not None
    budget = f"{args.trials} trials x {args.epochs} epochs" + (
        f", timeout {args.timeout:.0f} s" if args.timeout else ""
    )
    c = outcome.counts
    trial_text = config_text(best.params).replace("|", "/")  # a table cell: no pipes
    e = test.ensemble
    ensemble = (
        ""
        if e is None
        else f"; ensemble of {len(e.members)}: val {100 * e.val_accuracy:.2f}%, "
        f"**test {100 * e.accuracy:.2f}%**"
    )
    machine = (
        "GPU " + torch.cuda.get_device_name()
        if torch.cuda.is_available() and args.device != "cpu"
        else f"{os.cpu_count()}-core CPU"
    )
    return (
        f"| {time.strftime('%Y-%m-%d')} | {machine} | {args.dataset} | {args.model} | {budget} | "
        f"{c.finished} ({c.complete}/{c.pruned}) | {wall / 60:.1f} min | {100 * (best.value or 0):.2f}% | "
        f"**{100 * test.accuracy:.2f}%**{ensemble} | {best.number}: {trial_text} | "
        f"`{command}` |\n"
    )


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn", "any"])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="trials at a time (on a GPU, several fill it better)")
    p.add_argument("--ensemble", type=int, default=1, help="also score the mean of the top-K trials")
    p.add_argument("--out", default=str(Path(__file__).with_name("QUALITY.md")))
    return p.parse_args()


if __name__ == "__main__":
    import shlex
    import sys

    ARGS = parse()
    row = main(ARGS, command="python " + shlex.join(["benchmarks/bench_quality.py", *sys.argv[1:]]))
    out = Path(ARGS.out)
    if not out.exists():
        out.write_text(HEADER)
    with out.open("a") as f:
        f.write(row)
    print(row, end="")
    print(f"({platform.node()}) appended to {out}")
