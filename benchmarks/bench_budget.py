"""Does a `--budget` call end on time? Each DATASET:BUDGET runs `hpo search --budget BUDGET` in a
fresh project, timed from before the process starts to its exit; the promise is the budget plus
3% or plus 20 s, whichever is larger, the best model's MLflow export at the close included.

    python benchmarks/bench_budget.py --data-dir ../shared/datasets mnist:2m fashion-mnist:2m mnist:5m

Each row: the wall time, how far past the budget, the trials (complete/pruned) and the best
validation accuracy; the machine is printed first."""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UNITS = {"s": 1, "m": 60, "h": 3600}


def seconds(text: str) -> float:
    return float(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else float(text)


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text()
    cpu = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    kind = "AMX" if "amx_tile" in info else "AVX2 only" if "avx512f" not in info else "AVX-512"
    return f"{platform.node()}: {cpu} ({kind}), {os.cpu_count()} cores"


def run(dataset: str, budget: str, *, data_dir: str) -> str:
    with tempfile.TemporaryDirectory(prefix="hpo-budget-") as tmp:
        command = [
            sys.executable, "-m", "hpo", "search", "--dataset", dataset,
            "--data-dir", str(Path(data_dir).resolve()), "--budget", budget,
        ]  # fmt: skip
        start = time.time()
        done = subprocess.run(
            command, cwd=tmp, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
        )
        wall = time.time() - start
        out = done.stdout + done.stderr
        if done.returncode:
            return f"{dataset}:{budget} exit {done.returncode}: {out[-1500:]}"
        allowed = seconds(budget) + max(0.03 * seconds(budget), 20.0)
        counts = re.search(r"The study: (\d+) complete, (\d+) pruned", out)
        best = re.search(r"Best: trial (\d+), validation accuracy ([\d.]+%)", out)
        trials = f"{counts.group(1)}/{counts.group(2)}" if counts else "?"
        return (
            f"{dataset:<14} --budget {budget:<4} wall {wall:7.1f} s  over {wall - seconds(budget):+6.1f} s  "
            f"{'within' if wall <= allowed else 'OVER'} {allowed:.0f} s  trials {trials}  "
            f"best {best.group(2) if best else '-'} (trial {best.group(1) if best else '-'})"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("runs", nargs="+", help="DATASET:BUDGET, e.g. mnist:2m")
    args = p.parse_args()
    print(machine(), flush=True)
    for spec in args.runs:
        dataset, budget = spec.split(":")
        print(run(dataset, budget, data_dir=args.data_dir), flush=True)


if __name__ == "__main__":
    main()
