"""Per-trial bookkeeping: what the stores cost one trial through the lifecycle `hpo search` uses
(claim with ~15 `suggest_*` calls, MLflow run, params, 3 epochs of metrics and reports, checkpoint,
tags, close, tell), without training. Median of `--trials` trials in a fresh study, against any
pair of stores:

    python benchmarks/bench_bookkeeping.py --data-dir ../shared/datasets
    python benchmarks/bench_bookkeeping.py --data-dir ../shared/datasets \\
        --storage postgresql+psycopg://postgres@127.0.0.1:5432/optuna --tracking-uri http://127.0.0.1:5000

Prints the median with and without logging the trial's MLflow model (`served`, done for trials
that are the study's best when they end)."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

import torch

from hpo.config import DataConfig, ModelConfig, TrainConfig, as_params
from hpo.core.data import load_train_val
from hpo.core.engine import EpochMetrics, FitResult
from hpo.core.models import build_model
from hpo.search.space import DEFAULT_SPACE, restrict_family, sample
from hpo.stores import link
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna import StudyStore, make_pruner, make_sampler
from hpo.stores.runs import TrackedRun
from hpo.stores.runtime import configure

MLP = ModelConfig(family="mlp", hidden=(300, 100))


def bookkeeping_seconds(
    *,
    data_dir: str,
    storage: str,
    tracking_uri: str | None,
    trials: int = 5,
    epochs: int = 3,
    served: bool = False,
) -> float:
    """Median seconds of one trial's store work (run in a scratch folder)."""
    data = load_train_val(DataConfig(data_dir=os.path.abspath(data_dir)), device=torch.device("cpu"))
    model = build_model(MLP)
    result = FitResult(
        outcome="completed", best_epoch=epochs, best_val_accuracy=0.97, best_state=model.state_dict()
    )
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        store = MlflowStore(uri=tracking_uri)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        study = StudyStore(storage).create_or_resume(
            name=name, sampler=make_sampler("tpe", seed=0), pruner=make_pruner("median", epochs=epochs)
        )
        exp = store.experiment(name)
        times = []
        for n in range(trials):
            start = time.perf_counter()
            trial = study.claim(
                target=100, attrs={"host": "h", "pid": 1, "pid_token": "t"}, sampler="tpe", seed=0
            )
            assert trial is not None
            chosen = sample(trial.suggest, restrict_family(DEFAULT_SPACE, "mlp"))
            with TrackedRun(store=store, experiment_id=exp, name=f"trial-{n}", tags={"a": "b"}) as run:
                trial.set_attrs(**{link.RUN_ID: run.run_id})
                run.log_params(as_params(chosen.model, chosen.optim, TrainConfig(epochs=epochs)))
                for e in range(1, epochs + 1):
                    store.log_metrics(
                        run.run_id, EpochMetrics(e, 0.1, 0.9, 0.1, 0.9, 1.0, 0.05).metrics(), step=e
                    )
                    trial.report(0.9, step=e)
                run.save_checkpoint(result=result, model_config=MLP, data=data, meta={}, served=served)
                run.end("completed", tags={"state": "COMPLETE"})
            trial.tell("COMPLETE", 0.97)
            times.append(time.perf_counter() - start)
        os.chdir(home)
        return statistics.median(times[1:] if len(times) > 1 else times)  # the first pays imports


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--storage", default="sqlite:///studies/hpo.db")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--trials", type=int, default=6)
    args = p.parse_args()
    configure()
    where = f"{args.storage.split('://')[0]} + {args.tracking_uri or 'sqlite MLflow store'}"
    for served in (False, True):
        s = bookkeeping_seconds(data_dir=args.data_dir, storage=args.storage, tracking_uri=args.tracking_uri,
                                trials=args.trials, served=served)  # fmt: skip
        print(f"bookkeeping per trial ({where}; MLflow model logged: {served}): {1000 * s:.0f} ms")


if __name__ == "__main__":
    main()
