"""A --budget's final training of an exponential-schedule configuration, with its decay as the
trial had it and stretched over the final's epochs (`hpo.search.space.stretched`): the same
configuration, seed and split, side by side. The configuration is a trial of an anytime
benchmark's JSON (`benchmarks/anytime/*.json`, which keeps every trial's parameters).

    python benchmarks/bench_final_decay.py --data-dir ../shared/datasets --dataset fashion-mnist \\
        --anytime benchmarks/anytime/fashion-mnist-20min-hpo-0a5d523-s1.json --trial 38 \\
        --epochs 23 --seed 45 --decay stretched

Prints one row per run for benchmarks/QUALITY.md: best and last validation accuracy, the learning
rate at the end, seconds."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from bench_epoch import machine  # beside this script

from hpo.config import DataConfig, TrainConfig
from hpo.core.data import load_train_val
from hpo.core.engine import fit_config
from hpo.core.models import build_model
from hpo.search.space import DEFAULT_SPACE, config_from_params, stretched


def trial_params(path: Path, *, number: int) -> dict[str, object]:
    """Trial `number`'s parameters in an anytime benchmark's JSON (its first run)."""
    trials = json.loads(path.read_text())[0]["trials"]
    return next(t["params"] for t in trials if t["number"] == number)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--anytime", type=Path, required=True)
    p.add_argument("--trial", type=int, required=True)
    p.add_argument("--schedule", type=int, default=10, help="the trial's own epochs")
    p.add_argument("--epochs", type=int, required=True, help="the final training's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--decay", choices=("as-trained", "stretched"), required=True)
    a = p.parse_args()
    params = trial_params(a.anytime, number=a.trial)
    if a.decay == "stretched":
        params = stretched(params, space=DEFAULT_SPACE, schedule=a.schedule, epochs=a.epochs)
    data = load_train_val(DataConfig(dataset=a.dataset, data_dir=a.data_dir), device=torch.device("cpu"))
    chosen = config_from_params(params, in_shape=data.spec.shape, classes=len(data.spec.classes))
    assert chosen is not None, "the trial's parameters are incomplete"
    train = TrainConfig(
        epochs=a.epochs,
        batch_size=chosen.batch_size,
        seed=a.seed,
        device="cpu",
        augment=chosen.augment,
        label_smoothing=chosen.label_smoothing,
    )
    torch.manual_seed(train.seed)
    start = time.monotonic()
    result = fit_config(
        model=build_model(chosen.model), data=data, optim=chosen.optim, train=train, on_epoch=None
    )
    last = result.history[-1]
    cpu = machine(torch.device("cpu")).split(";")[0]
    print(
        f"| {time.strftime('%Y-%m-%d')} | {cpu} | {a.dataset} | "
        f"trial {a.trial} | {a.decay} (gamma {chosen.optim.gamma:.3f}) | {a.epochs} | "
        f"{100 * result.best_val_accuracy:.2f}% (epoch {result.best_epoch}) | "
        f"{100 * last.val_accuracy:.2f}% | {last.lr:.2g} | {time.monotonic() - start:.0f} s |"
    )


if __name__ == "__main__":
    main()
