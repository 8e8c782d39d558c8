"""Classical baselines beside the search (what the course's last notebook does): logistic
regression, k-nearest neighbours and scikit-learn's MLP, fitted on the same training part and
scored on the same validation split as the study's trials, each logged as an MLflow run in the
study's experiment (tag `hpo_role=baseline`, metrics `val_accuracy` and `fit_seconds`). The only
module that imports scikit-learn."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from hpo.config import DataConfig, as_params
from hpo.core.data import load_train_val
from hpo.errors import ConfigError
from hpo.stores import link
from hpo.stores.runs import TrackedRun, provenance

BASELINES = ("logistic", "knn", "sklearn-mlp")


@dataclass(frozen=True)
class BaselineResult:
    name: str
    val_accuracy: float  # 0..1
    fit_seconds: float
    run_id: str


def _estimator(name: str, *, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    if name == "logistic":
        return LogisticRegression(max_iter=100, random_state=seed)  # lbfgs, L2, C=1
    if name == "knn":
        return KNeighborsClassifier(n_neighbors=3, n_jobs=-1)
    if name == "sklearn-mlp":  # one hidden layer of 100, Adam, early stopping off: fixed 20 epochs
        return MLPClassifier(hidden_layer_sizes=(100,), max_iter=20, random_state=seed)
    raise ConfigError(f"unknown baseline {name!r}: choose from {', '.join(BASELINES)}")


def _settings(estimator: Any) -> dict[str, object]:
    """The estimator's own settings that say how it was made (scalars only)."""
    return {k: v for k, v in estimator.get_params().items() if isinstance(v, (int, float, str, bool, tuple))}


def run_baselines(
    *,
    store: Any,
    experiment: str,
    data_cfg: DataConfig,
    names: tuple[str, ...],
    seed: int,
    command: str,
    on_start: Callable[[int], None] | None = None,
    on_fitted: Callable[[BaselineResult], None] | None = None,
) -> list[BaselineResult]:
    """Fit and score each baseline on the study's split, one MLflow run each; the flattened
    (N, 784) images are normalized as the trials see them. `on_start` hears the number of
    training images once the names and the data are checked, `on_fitted` each result as it comes
    (k-NN and the MLP take minutes each on a CPU)."""
    estimators = {name: _estimator(name, seed=seed) for name in names}  # refuse typos before work
    data = load_train_val(data_cfg, device=torch.device("cpu"))
    x_train, y_train = data.train.x.flatten(1).numpy(), data.train.y.numpy()
    x_val, y_val = data.val.x.flatten(1).numpy(), data.val.y.numpy()
    if on_start is not None:
        on_start(len(y_train))
    tags = provenance(
        device=torch.device("cpu"),
        dataset=data_cfg.dataset,
        fingerprint=data.fingerprint,
        seed=seed,
        command=command,
    )
    tags |= {link.ROLE: link.ROLE_BASELINE, link.STUDY: experiment}
    experiment_id = store.experiment(experiment)
    results = []
    for name, estimator in estimators.items():
        with TrackedRun(store=store, experiment_id=experiment_id, name=f"baseline-{name}", tags=tags) as run:
            run.log_params({**as_params(data_cfg), "baseline": name, **_settings(estimator)})
            start = time.perf_counter()
            with warnings.catch_warnings():  # the fixed iteration budgets are the point
                warnings.simplefilter("ignore")
                estimator.fit(x_train, y_train)
            seconds = time.perf_counter() - start
            accuracy = float(estimator.score(x_val, y_val))
            run.log_metrics({link.VAL_ACCURACY: accuracy, "fit_seconds": seconds}, step=0)
            run.end("completed")
        results.append(
            BaselineResult(name=name, val_accuracy=accuracy, fit_seconds=seconds, run_id=run.run_id)
        )
        if on_fitted is not None:
            on_fitted(results[-1])
    return results
