"""What every MLflow call of hpo shares: the retried call that turns any failure into one
TrackingError line, the run record, the store's defaults and URLs. Part of `hpo.stores.mlflow`,
the only package that imports mlflow."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import mlflow

from hpo import signals
from hpo.errors import TrackingError, first_line
from hpo.stores import link, sqlite
from hpo.stores.backoff import with_backoff

MLFLOW_VERSION: str = mlflow.__version__
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns/artifacts"
# MLflow 3's UI opens an experiment in GenAI mode ("Traces: 0") unless this tag says otherwise.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE = "mlflow.note.content"  # a run's description in the UI (markdown)
# mlflow.pyfunc's device for PyTorch models (CUDA when there is one); our pt2 graphs stay on the CPU.
MLFLOW_PREDICTION_DEVICE = "MLFLOW_DEFAULT_PREDICTION_DEVICE"
RETRIES = 4  # attempts for a locked store (each waits out SQLite's busy timeout), backoff from 0.1 s
T = TypeVar("T")


def run_url(*, base: str, experiment_id: str, run_id: str) -> str:
    """A run's page, in model-training mode (without the query MLflow 3 shows it as a GenAI run)."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    name: str
    status: link.RunStatus
    params: dict[str, str]
    metrics: dict[str, float]  # latest value of each metric
    tags: dict[str, str]
    artifact_uri: str


def resolve_tracking_uri(uri: str | None) -> str:
    """The flag's value (the CLI fills it from MLFLOW_TRACKING_URI), else the default; a relative
    SQLite path is made absolute."""
    return sqlite.absolute(uri or DEFAULT_TRACKING_URI)


def _transient(exc: Exception) -> bool:
    text = str(exc).lower()
    return not isinstance(exc, TrackingError) and ("locked" in text or "busy" in text)


def call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` with SIGINT/SIGTERM deferred (a Ctrl-C lands after the write, never
    inside it), retried while the store is locked; any failure becomes one TrackingError line."""

    def attempt() -> T:
        with signals.deferred():
            return fn(*args, **kwargs)

    try:
        return with_backoff(attempt, retry_on=_transient, attempts=RETRIES, first_delay_s=0.1)
    except TrackingError:
        raise
    except Exception as exc:
        raise TrackingError(f"MLflow store: cannot {what}: {_cause(exc)}") from exc


def _cause(exc: Exception) -> str:
    """An OSError by its cause alone ("No space left on device"): its message names the paths of
    a copy, the first a temporary file that no longer exists when the user reads it."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return first_line(exc)


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "experiment"


def record(r: Any) -> RunRecord:
    return RunRecord(
        run_id=r.info.run_id,
        name=r.info.run_name or "",
        status=r.info.status,
        params=dict(r.data.params),
        metrics=dict(r.data.metrics),
        tags=dict(r.data.tags),
        artifact_uri=r.info.artifact_uri or "",
    )


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for files about to be uploaded as artifacts."""
    return tempfile.TemporaryDirectory(prefix="hpo-")
