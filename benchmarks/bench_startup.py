"""Start-up: seconds from launching `hpo search` to its first trial, on a fresh store (the study,
both schemas and the parent run are created) and on a store that already holds the study (a
resumed search). Medians of `--repeats` runs.

    python benchmarks/bench_startup.py --data-dir ../shared/datasets [--repeats 3]

Two moments of the trial, both read from what MLflow recorded: its run's start time, and its
first batch, which is when epoch 1 began: the `epoch_seconds` metric's timestamp minus its value
(the metric is logged right after the epoch's evaluation). Between the two come the model's and
the optimizer's construction. Also shown: the import of the search code alone, the floor that
every process pays."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = 'family = "mlp"\nmlp_layers = 1\nmlp_width = 64\nbatch_size = 512\n'


def trial_moments(folder: Path, *, skip: int) -> tuple[float, float]:
    """Epoch seconds at which the study's (skip+1)-th trial run started, and its first batch."""
    from hpo.stores.mlflow import MlflowStore

    tracking = f"sqlite:///{(folder / 'mlruns' / 'mlflow.db').resolve()}"
    store = MlflowStore(uri=tracking)
    runs = store.client.search_runs(
        [store.experiment("startup")], filter_string="tags.hpo_role = 'trial'", order_by=["start_time ASC"]
    )
    run = runs[skip]
    (epoch_1,) = [m for m in store.client.get_metric_history(run.info.run_id, "epoch_seconds") if m.step == 1]
    return float(run.info.start_time) / 1000, epoch_1.timestamp / 1000 - epoch_1.value


def launch(folder: Path, *, data_dir: str, trials: int) -> tuple[float, float]:
    """Seconds from launch to the newest trial's run start, and to its first batch."""
    argv = [sys.executable, "-m", "hpo", "search", "--study", "startup", "--data-dir", data_dir,
            "--space", "space.toml", "--trials", str(trials), "--epochs", "1", "--device", "cpu",
            "--no-warm-start", "-q"]  # fmt: skip
    start = time.time()
    subprocess.run(argv, cwd=folder, check=True, capture_output=True)
    run_start, first_batch = trial_moments(folder, skip=trials - 1)
    return run_start - start, first_batch - start


def import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import hpo.cli.search, hpo.search.session"], check=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    fresh: list[tuple[float, float]] = []
    resumed: list[tuple[float, float]] = []
    imports = []
    for _ in range(args.repeats):
        imports.append(import_seconds())
        with tempfile.TemporaryDirectory(prefix="hpo-startup-") as tmp:
            Path(tmp, "space.toml").write_text(SPACE)
            fresh.append(launch(Path(tmp), data_dir=data_dir, trials=1))
            resumed.append(launch(Path(tmp), data_dir=data_dir, trials=2))
    print(f"{'import of the search code':<46} {statistics.median(imports):5.2f} s")
    for what, runs in (("new store", fresh), ("resumed", resumed)):
        for i, moment in enumerate(("first trial's run start", "first batch")):
            values = [r[i] for r in runs]
            label = f"launch -> {moment}, {what}"
            print(f"{label:<46} {statistics.median(values):5.2f} s  (runs: {fmt(values)})")


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
