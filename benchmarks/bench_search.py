"""A whole search, side by side in one run: (a) the way Optuna's PyTorch example teaches it (an
objective that builds DataLoaders per trial, trains with `trial.report`/`should_prune`, logs to
MLflow per epoch with `mlflow.log_metric`, SQLite storage) and (b) `hpo search`, on the same
fixed configuration (784-300-300 MLP, SGD lr 0.05 momentum 0.9, batch 128, no augmentation), the
same split and the same trial count and epochs. Prints wall time, trials/hour, the ratio and the
mean validation accuracy of each, so the speed-up is measured at equal accuracy:

    python benchmarks/bench_search.py --data-dir ../shared/datasets --trials 8 --epochs 3

Both run in scratch folders; (a) first, then (b)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hpo.core.data import split_indices

SPACE = """# one fixed configuration: every trial trains the same thing, only its seed differs
family = "mlp"
mlp_layers = 2
mlp_width = [300]  # every layer
activation = "relu"
dropout = [0.0]
batch_norm = [false]
optimizer = "sgd"
momentum = [0.9]
lr_sgd = [0.05]
weight_decay = [0.0]
schedule = "none"
batch_size = [128]
augment = "none"
label_smoothing = [0.0]
"""


def optuna_example_way(*, data_dir: str, trials: int, epochs: int) -> tuple[float, list[float]]:
    """(a) Optuna's PyTorch example, with MLflow logging per epoch; returns (seconds, val accuracies)."""
    import mlflow
    import optuna
    from torch import nn
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    mlflow.set_tracking_uri(f"sqlite:///{os.path.abspath('mlflow.db')}")
    mlflow.set_experiment("optuna-example")

    def objective(trial: optuna.Trial) -> float:
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        full = datasets.MNIST(data_dir, train=True, download=False, transform=tf)
        train_idx, val_idx = split_indices(n=len(full), val_size=10_000, seed=0)
        train = DataLoader(Subset(full, train_idx.tolist()), batch_size=128, shuffle=True)
        val = DataLoader(Subset(full, val_idx.tolist()), batch_size=1000)
        widths = [trial.suggest_categorical("w0", [300]), trial.suggest_categorical("w1", [300])]
        lr = trial.suggest_categorical("lr", [0.05])
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(784, widths[0]), nn.ReLU(), nn.Linear(widths[0], widths[1]), nn.ReLU(),
            nn.Linear(widths[1], 10),
        )  # fmt: skip
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        accuracy = 0.0
        with mlflow.start_run(run_name=f"trial-{trial.number}"):
            mlflow.log_params(trial.params)
            for epoch in range(epochs):
                model.train()
                for x, y in train:
                    opt.zero_grad()
                    F.cross_entropy(model(x), y).backward()
                    opt.step()
                model.eval()
                with torch.no_grad():
                    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in val)
                accuracy = correct / len(val_idx)
                mlflow.log_metric("val_accuracy", accuracy, step=epoch)
                trial.report(accuracy, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return accuracy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    study = optuna.create_study(direction="maximize", storage="sqlite:///example.db", study_name="example")
    study.optimize(objective, n_trials=trials)
    seconds = time.perf_counter() - start
    return seconds, [t.value for t in study.trials if t.value is not None]


def hpo_way(*, data_dir: str, trials: int, epochs: int) -> tuple[float, list[float]]:
    """(b) `hpo search` as a user runs it (a fresh process, wall time from launch)."""
    Path("space.toml").write_text(SPACE)
    argv = [sys.executable, "-m", "hpo", "search", "--data-dir", data_dir, "--model", "mlp", "--space",
            "space.toml", "--trials", str(trials), "--epochs", str(epochs), "--pruner", "none",
            "--no-warm-start", "--device", "cpu", "--study", "bench", "-q"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    seconds = time.perf_counter() - start

    from hpo.stores.optuna import StudyStore

    study = StudyStore("sqlite:///studies/hpo.db").load("bench")
    return seconds, [r.value for r in study.rows(states=("COMPLETE",)) if r.value is not None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    results = {}
    for name, way in (("Optuna example + MLflow", optuna_example_way), ("hpo search", hpo_way)):
        with tempfile.TemporaryDirectory(prefix="hpo-bench-search-") as tmp:
            here = os.getcwd()
            os.chdir(tmp)
            try:
                results[name] = way(data_dir=data_dir, trials=args.trials, epochs=args.epochs)
            finally:
                os.chdir(here)
    threads = torch.get_num_threads()
    print(f"{args.trials} trials x {args.epochs} epochs, MLP 784-300-300, batch 128, CPU threads {threads}")
    base = results["Optuna example + MLflow"][0]
    for name, (seconds, values) in results.items():
        mean = statistics.mean(values) if values else float("nan")
        rate = 3600 * args.trials / seconds
        print(
            f"{name:<24} {seconds:7.1f} s  {rate:6.0f} trials/hour  x{base / seconds:4.1f}  "
            f"mean val accuracy {100 * mean:.2f}% ({len(values)} trials)"
        )


if __name__ == "__main__":
    main()
