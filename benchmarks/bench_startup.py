"""Start-up: seconds from launching `hpo search` to the start of its first trial's training, on
a fresh store (the study, both schemas and the parent run are created) and on a store that
already holds the study (a resumed search). Medians of `--repeats` runs.

    python benchmarks/bench_startup.py --data-dir ../shared/datasets [--repeats 3]

"Training starts" is the first trial's MLflow run start time: after it come only the model's
construction and its params (milliseconds), then the first batch. Also shown: the import of the
search code alone, the floor that every process pays."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = 'family = "mlp"\nmlp_layers = 1\nmlp_width = 64\nbatch_size = 512\n'


def first_run_start(folder: Path, *, skip: int) -> float:
    """Epoch seconds at which the study's (skip+1)-th trial run started."""
    from hpo.mlflow_store import MlflowStore

    tracking = f"sqlite:///{(folder / 'mlruns' / 'mlflow.db').resolve()}"
    store = MlflowStore(uri=tracking)
    runs = store.client.search_runs(
        [store.experiment("startup")], filter_string="tags.hpo_role = 'trial'", order_by=["start_time ASC"]
    )
    return float(runs[skip].info.start_time) / 1000


def launch(folder: Path, *, data_dir: str, trials: int) -> float:
    """Seconds from launch to the start of the newest trial's run."""
    argv = [sys.executable, "-m", "hpo", "search", "--study", "startup", "--data-dir", data_dir,
            "--space", "space.toml", "--trials", str(trials), "--epochs", "1", "--device", "cpu",
            "--no-warm-start", "-q"]  # fmt: skip
    start = time.time()
    subprocess.run(argv, cwd=folder, check=True, capture_output=True)
    return first_run_start(folder, skip=trials - 1) - start


def import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import hpo.cli.search, hpo.session"], check=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    fresh, resumed, imports = [], [], []
    for _ in range(args.repeats):
        imports.append(import_seconds())
        with tempfile.TemporaryDirectory(prefix="hpo-startup-") as tmp:
            Path(tmp, "space.toml").write_text(SPACE)
            fresh.append(launch(Path(tmp), data_dir=data_dir, trials=1))
            resumed.append(launch(Path(tmp), data_dir=data_dir, trials=2))
    print(f"import of the search code        {statistics.median(imports):5.2f} s")
    print(f"launch -> first trial, new store {statistics.median(fresh):5.2f} s  (runs: {fmt(fresh)})")
    print(f"launch -> first trial, resumed   {statistics.median(resumed):5.2f} s  (runs: {fmt(resumed)})")


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
