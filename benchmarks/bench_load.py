"""A loaded CPU: the batch-64 MLP (784-300-100) epoch with nothing else running, beside one busy
process (`python -c "while True: pass"`), and beside three; each with hpo's engine on every core
(PyTorch's default, what hpo did before), with the threads hpo now chooses from the free cores
(`hpo.core.cost.choose_threads`), and with the notebooks' DataLoader loop. Side by side in one run.

    python benchmarks/bench_load.py --data-dir ../shared/datasets [--repeats 3]

Prints a markdown table (median seconds per epoch, and each against its idle time) for
benchmarks/RESULTS.md."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import torch
from bench_epoch import MLP, hpo_epoch, machine, seeds_epoch  # beside this script

from hpo.config import DataConfig
from hpo.core.cost import choose_threads, free_cores
from hpo.core.data import load_train_val

BATCH = 64


@contextlib.contextmanager
def busy(processes: int) -> Iterator[None]:
    """`processes` Python loops keeping a core busy each, for the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    time.sleep(1.0)  # let the scheduler see them
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def median(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def measure(data_dir: str, data: object, repeats: int) -> dict[str, float]:
    """Median epoch seconds of the three ways under the current load."""
    all_cores = torch.get_num_threads()
    found = {"free cores": free_cores(sample_s=0.5)}
    chosen = choose_threads(free=found["free cores"])
    found["threads chosen"] = chosen
    found["hpo, all cores"] = median(
        lambda: hpo_epoch(data=data, model_cfg=MLP, batch=BATCH, device=CPU), repeats
    )
    torch.set_num_threads(chosen)
    found["hpo, chosen threads"] = median(
        lambda: hpo_epoch(data=data, model_cfg=MLP, batch=BATCH, device=CPU), repeats
    )
    torch.set_num_threads(all_cores)
    found["notebook loop"] = median(
        lambda: seeds_epoch(data_dir=data_dir, model_cfg=MLP, batch=BATCH, device=CPU), repeats
    )
    return found


CPU = torch.device("cpu")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    data = load_train_val(DataConfig(dataset="mnist", data_dir=args.data_dir), device=CPU)
    hpo_epoch(data=data, model_cfg=MLP, batch=BATCH, device=CPU)  # warm-up: first-use costs
    print(f"machine: {machine(CPU)}")
    results = {}
    for load in (0, 1, 3):
        with busy(load):
            results[load] = measure(args.data_dir, data, args.repeats)
        print(load, results[load], flush=True)
    idle = results[0]
    ways = ("hpo, all cores", "hpo, chosen threads", "notebook loop")
    print("\n| busy processes | free cores | threads chosen | " + " | ".join(ways) + " |")
    print("|---|---|---|---|---|---|")
    for load, r in results.items():
        cells = [
            f"{r[k]:.2f} s ({r[k] / idle[k]:.1f}x)"
            for k in ("hpo, all cores", "hpo, chosen threads", "notebook loop")
        ]
        print(f"| {load} | {r['free cores']:.2f} | {r['threads chosen']:.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
