"""Start-up cost and trials per minute of two workers placed four ways on this machine: `--jobs 2`,
`--ray --jobs 2` (a local Ray instance started by the call), `--ray ADDRESS --jobs 2` (a cluster
already running: `ray start --head`) and two hand-started `hpo search` processes after
`--create-only`. Each way runs a fresh study in its own folder with one fixed MLP configuration, so
only the placement differs.

    python benchmarks/bench_ray.py --data-dir ../shared/datasets [--trials 16] [--epochs 1]

Start-up: from the launch to the first trial's MLflow run. Trials per minute: finished trials over
the span from the first trial's start to the last one's end."""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = """mlp_layers = 1
mlp_width = [256]
activation = "relu"
dropout = [0.1]
batch_norm = [false]
optimizer = "sgd"
momentum = [0.9]
lr = [0.05]
weight_decay = [1e-5]
schedule = "none"
batch_size = [128]
augment = "none"
label_smoothing = [0.0]
"""
RAY_PORT = 6399


def command(args: argparse.Namespace, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "hpo", "search", "--data-dir", str(Path(args.data_dir).resolve()),
        "--trials", str(args.trials), "--epochs", str(args.epochs), "--model", "mlp",
        "--space", "space.toml", "--pruner", "none", "--no-warm-start", "--device", "cpu",
        "--study", "bench", "--quiet", *extra,
    ]  # fmt: skip


def trial_spans(folder: Path) -> list[tuple[float, float]]:
    """(start, end) in seconds since the epoch of every trial's MLflow run."""
    with sqlite3.connect(folder / "mlruns" / "mlflow.db") as db:
        rows = db.execute(
            "SELECT start_time, end_time FROM runs WHERE run_uuid NOT IN "
            "(SELECT run_uuid FROM tags WHERE key = 'hpo_role' AND value = 'study')"
        ).fetchall()
    return sorted((s / 1000, e / 1000) for s, e in rows if e)


def measure(name: str, args: argparse.Namespace, launch: list[list[str]], *, before: list[str] = ()) -> None:
    with tempfile.TemporaryDirectory(prefix="hpo-ray-") as tmp:
        folder = Path(tmp)
        (folder / "space.toml").write_text(SPACE)
        start = time.time()
        if before:
            subprocess.run(before, cwd=folder, check=True, capture_output=True)
        procs = [
            subprocess.Popen(c, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for c in launch
        ]
        for p in procs:
            out = p.communicate()[0]
            if p.returncode:
                raise SystemExit(f"{name}: exit {p.returncode}\n{out.decode()[-2000:]}")
        wall = time.time() - start
        spans = trial_spans(folder)
        first, last = spans[0][0], max(e for _, e in spans)
        rate = 60 * len(spans) / (last - first)
        print(
            f"{name:<34} start-up {first - start:5.1f} s   {rate:5.1f} trials/min   "
            f"{len(spans)} trials   wall {wall:5.1f} s",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway cluster on this machine
    info = Path("/proc/cpuinfo").read_text()
    cpu = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "")
    amx = " (AMX)" if "amx_tile" in info else ""
    work = f"{args.trials} trials x {args.epochs} epoch(s) of one MLP on MNIST, two workers each way"
    print(f"{platform.node()}: {cpu}{amx}, {os.cpu_count()} cores; {work}", flush=True)
    measure("--jobs 2", args, [command(args, "--jobs", "2")])
    measure("--ray --jobs 2 (local instance)", args, [command(args, "--ray", "--jobs", "2")])
    head = [
        "ray",
        "start",
        "--head",
        f"--port={RAY_PORT}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    subprocess.run(head, check=True, capture_output=True)
    try:
        address = f"127.0.0.1:{RAY_PORT}"
        measure("--ray ADDRESS --jobs 2 (running)", args, [command(args, "--ray", address, "--jobs", "2")])
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True)
    hand = command(args)
    measure("hand-started: --create-only + 2", args, [hand, hand], before=[*hand, "--create-only"])


if __name__ == "__main__":
    main()
