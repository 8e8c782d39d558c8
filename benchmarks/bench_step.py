"""Per-step cost of hpo's training engine, this tree against another one (an older commit checked
out with `git worktree add /tmp/old REV`), side by side: each (tree, optimizer, batch) runs in a
fresh process, the trees alternating, `--rounds` times; each run prints the median of `--repeats`
one-epoch `fit` calls (MNIST, evaluation included) in seconds and in microseconds per step.

    python benchmarks/bench_step.py --data-dir ../shared/datasets --against /tmp/old \\
        [--model mlp|cnn] [--hidden 300,100] [--batches 8 64 1024] [--optimizers sgd adam] \\
        [--threads 0] [--device cpu]

`--hidden 16,16 --batches 16 --threads 1` is the overhead probe: with next to no arithmetic, the
time per step is the Python and dispatch a step costs, which a GPU pays before any kernel runs."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # this tree's root

# Runs inside the measured tree (its `hpo` first on sys.path): one line "seconds us_per_step".
PROBE = """
import math, statistics, sys, torch
from hpo.config import DataConfig, ModelConfig, OptimConfig
from hpo.core.data import load_train_val
from hpo.core.engine import fit
from hpo.core.device import resolve_device
from hpo.core.models import build_model
data_dir, device, hidden, opt, batch, repeats, threads, family = sys.argv[1:9]
if int(threads):
    torch.set_num_threads(int(threads))
dev = resolve_device(device)
data = load_train_val(DataConfig(data_dir=data_dir, val_size=10_000), device=dev)
times = []
for _ in range(int(repeats)):
    torch.manual_seed(0)
    if family == "cnn":  # seed 001's: conv 1->10 5x5, pool, conv 10->20 5x5, pool, fc 320->10
        cfg = ModelConfig(family="cnn", channels=(10, 20), kernel_size=5, padding="valid", fc_width=0)
    else:
        cfg = ModelConfig(family="mlp", hidden=tuple(int(h) for h in hidden.split(",")))
    model = build_model(cfg).to(dev)
    lr = 0.01 if opt == "sgd" else 1e-3
    result = fit(model=model, data=data, optim=OptimConfig(optimizer=opt, lr=lr), epochs=1,
                 batch_size=int(batch), seed=0)
    times.append(result.history[0].epoch_seconds)
seconds = statistics.median(times)
print(seconds, seconds / math.ceil(len(data.train) / int(batch)) * 1e6)
"""


def measure(tree: Path, *, args: argparse.Namespace, opt: str, batch: int) -> tuple[float, float]:
    """(epoch seconds, microseconds per step) of `tree`'s engine, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-c", PROBE, str(Path(args.data_dir).resolve()), args.device, args.hidden, opt,
            str(batch), str(args.repeats), str(args.threads), args.model]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=tree)
    seconds, per_step = done.stdout.split()[-2:]
    return float(seconds), float(per_step)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--against", type=Path, help="another tree's root (e.g. a git worktree)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="cnn: seed 001's CNN")
    p.add_argument("--hidden", default="300,100", help="MLP hidden widths")
    p.add_argument("--batches", type=int, nargs="+", default=[8, 64, 1024])
    p.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    trees = {"this": HERE} | ({"against": args.against.resolve()} if args.against else {})
    threads = args.threads or "default"
    what = "seed 001's CNN" if args.model == "cnn" else f"MLP 784-{args.hidden.replace(',', '-')}-10"
    print(f"{what}, device {args.device}, threads {threads}")
    print(f"{'tree':<8} {'optim':<6} {'batch':>5}  epoch s (per round)        us/step (per round)")
    for opt in args.optimizers:
        for batch in args.batches:
            rows: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    rows[name].append(measure(tree, args=args, opt=opt, batch=batch))
            for name, runs in rows.items():
                secs = ", ".join(f"{s:.3f}" for s, _ in runs)
                steps = ", ".join(f"{u:.0f}" for _, u in runs)
                print(f"{name:<8} {opt:<6} {batch:>5}  {secs:<26} {steps}")


if __name__ == "__main__":
    main()
