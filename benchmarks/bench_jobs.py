"""Trials per hour of `hpo search --jobs N` for N in 1, 2, 4: each run starts a fresh study in
a temporary folder with the same small MLP space, so only the parallelism differs.

    python benchmarks/bench_jobs.py --data-dir ../shared/datasets [--device cpu] [--trials 8] [--epochs 2]"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = """mlp_layers = { low = 1, high = 2 }
mlp_width = { low = 64, high = 512, log = true }
batch_size = [128, 256, 512]
optimizer = ["adam", "sgd"]
"""


def run(*, jobs: int, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory(prefix="hpo-jobs-") as tmp:
        Path(tmp, "space.toml").write_text(SPACE)
        command = [
            sys.executable,
            "-m",
            "hpo",
            "search",
            "--data-dir",
            str(Path(args.data_dir).resolve()),
            "--trials",
            str(args.trials),
            "--epochs",
            str(args.epochs),
            "--model",
            "mlp",
            "--space",
            "space.toml",
            "--pruner",
            "none",
            "--device",
            args.device,
            "--jobs",
            str(jobs),
            "--quiet",
        ]
        start = time.perf_counter()
        subprocess.run(command, cwd=tmp, check=True, capture_output=True, text=True)
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--device", default="auto")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    args = p.parse_args()
    print(
        f"{args.trials} trials x {args.epochs} epochs, MLP space, device {args.device}; wall incl. start-up"
    )
    base = 0.0
    for jobs in args.jobs:
        seconds = run(jobs=jobs, args=args)
        base = base or seconds
        print(
            f"--jobs {jobs}: {seconds:6.1f} s  {3600 * args.trials / seconds:7.0f} trials/hour  "
            f"speed-up {base / seconds:.2f}x"
        )


if __name__ == "__main__":
    main()
