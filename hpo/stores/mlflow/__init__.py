"""MLflow tracking behind a small interface: `store.py` (`MlflowStore`) and `calls.py` (the retried
call, records, defaults). The only package that imports mlflow.

Default store: `sqlite:///mlruns/mlflow.db` relative to the working directory, with artifacts
under `artifacts/` beside the store file. Every write is retried while the store is locked (several
workers may share one SQLite file) and turned into a one-line TrackingError if it keeps failing.
Process-wide settings (quiet loggers, no progress bars) are applied by `hpo.stores.runtime.configure`
through environment variables that mlflow reads when it is imported."""

from hpo.stores.mlflow.calls import (
    DEFAULT_ARTIFACT_ROOT,
    DEFAULT_TRACKING_URI,
    EXPERIMENT_KIND,
    MLFLOW_PREDICTION_DEVICE,
    MLFLOW_VERSION,
    MODEL_TRAINING,
    NOTE,
    RunRecord,
    resolve_tracking_uri,
    run_url,
    scratch_dir,
)
from hpo.stores.mlflow.store import MlflowStore

__all__ = [
    "DEFAULT_ARTIFACT_ROOT",
    "DEFAULT_TRACKING_URI",
    "EXPERIMENT_KIND",
    "MLFLOW_PREDICTION_DEVICE",
    "MLFLOW_VERSION",
    "MODEL_TRAINING",
    "NOTE",
    "MlflowStore",
    "RunRecord",
    "resolve_tracking_uri",
    "run_url",
    "scratch_dir",
]
