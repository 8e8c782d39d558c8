"""`MlflowStore`: a handle on one MLflow tracking store (experiments, runs, metrics, artifacts, logged
and registered models). Part of `hpo.stores.mlflow`, the only package that imports mlflow."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import mlflow
import mlflow.artifacts
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from hpo.errors import TrackingError
from hpo.stores import link, sqlite
from hpo.stores.mlflow.calls import (
    DEFAULT_ARTIFACT_ROOT,
    EXPERIMENT_KIND,
    MLFLOW_PREDICTION_DEVICE,
    MODEL_TRAINING,
    RunRecord,
    call,
    record,
    resolve_tracking_uri,
    safe_name,
)

if TYPE_CHECKING:
    from torch import nn


class MlflowStore:
    """A handle on one MLflow tracking store."""

    def __init__(
        self, *, uri: str | None = None, artifact_root: str | None = None, create: bool = True
    ) -> None:
        """`create`: make the store if it does not exist (a run is about to be logged); else it must."""
        self.uri = resolve_tracking_uri(uri)
        # Beside the store file (mlruns/artifacts next to mlruns/mlflow.db), wherever hpo runs from.
        db = sqlite.db_path(self.uri)
        default = db.parent / "artifacts" if db is not None else Path(DEFAULT_ARTIFACT_ROOT)
        self.artifact_root = Path(artifact_root or default).resolve()
        sqlite.redo_interrupted_creation(self.uri, error=TrackingError, what="MLflow store")
        sqlite.check_store(self.uri, kind="mlflow", create=create, error=TrackingError)
        sqlite.create_folder(self.uri, error=TrackingError, what="MLflow store")
        sqlite.install()
        self.client = call("open the store " + self.uri, MlflowClient, tracking_uri=self.uri)
        # Opening the store creates or migrates its tables; fail here, clearly, if it cannot.
        call("open the store " + self.uri, self.client.search_experiments, max_results=1)

    def experiment(self, name: str) -> str:
        """Id of the experiment `name`, created (with its artifacts under our root) if needed, and
        marked as a model-training experiment so the UI does not open it in GenAI mode."""
        found = call("read experiments", self.client.get_experiment_by_name, name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                call("restore experiment", self.client.restore_experiment, found.experiment_id)
            if found.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:  # made by an older hpo
                call(
                    "tag experiment",
                    self.client.set_experiment_tag,
                    found.experiment_id,
                    EXPERIMENT_KIND,
                    MODEL_TRAINING,
                )
            return str(found.experiment_id)
        location = None
        if self.uri.startswith("sqlite:") or "://" not in self.uri:
            location = (self.artifact_root / safe_name(name)).as_uri()
        try:
            tags = {EXPERIMENT_KIND: MODEL_TRAINING}
            return str(self.client.create_experiment(name, artifact_location=location, tags=tags))
        except MlflowException:  # another worker created it between our read and write
            found = call("read experiments", self.client.get_experiment_by_name, name)
            if found is None:
                raise
            return str(found.experiment_id)

    def latest_experiment(self) -> str | None:
        """Name of the most recently updated experiment other than MLflow's Default, if any."""
        found = call(
            "search experiments",
            self.client.search_experiments,
            order_by=["last_update_time DESC"],
            max_results=20,
        )
        names = [e.name for e in found if e.name != "Default"]
        return names[0] if names else None

    def set_experiment_tags(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            call("tag an experiment", self.client.set_experiment_tag, experiment_id, key, value)

    def find_experiment(self, name: str) -> str | None:
        """Id of the active experiment `name`, None when there is none (nothing is created)."""
        found = call("read experiments", self.client.get_experiment_by_name, name)
        if found is None or found.lifecycle_stage == "deleted":
            return None
        return str(found.experiment_id)

    def start_run(
        self, *, experiment_id: str, name: str, tags: Mapping[str, str], parent_run_id: str | None = None
    ) -> str:
        all_tags = dict(tags)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = call("create a run", self.client.create_run, experiment_id, run_name=name, tags=all_tags)
        return str(run.info.run_id)

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            call("log params", self.client.log_batch, run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        """One batch for all metrics of one step (e.g. an epoch): one store write per epoch."""
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        call("log metrics", self.client.log_batch, run_id, metrics=items)

    def set_tags(self, run_id: str, tags: Mapping[str, object]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        call("set tags", self.client.log_batch, run_id, tags=items)

    def check_artifacts_here(self, run_id: str) -> None:
        """Refuse to write a run's artifacts outside the folder that holds this SQLite store. MLflow
        records absolute artifact locations: in a copied or moved project they still name the
        original's folders, and a write (the lockbox's confusion matrix) would change that project
        while this one's records said nothing happened."""
        db = sqlite.db_path(self.uri)
        uri = self.run(run_id).artifact_uri if db is not None else ""
        if db is None or not uri.startswith("file://"):
            return
        where, home = Path(uri.removeprefix("file://")), db.resolve().parent
        if not where.resolve().is_relative_to(home):
            raise TrackingError(
                f"run {run_id} keeps its artifacts in {where}, outside {home} (this store's folder): the "
                "project was copied or moved from there, and writing would change the original; see "
                "'Moving a project' in docs/COMMANDS.md"
            )

    def log_dir(self, run_id: str, local_dir: Path, *, artifact_path: str) -> None:
        self.check_artifacts_here(run_id)
        try:
            call("upload artifacts", self.client.log_artifacts, run_id, str(local_dir), artifact_path)
        except TrackingError as exc:  # say where they were going
            where = f"{self.run(run_id).artifact_uri}/{artifact_path}"
            raise TrackingError(f"{exc} (to {where})") from exc

    def log_file(self, run_id: str, path: Path, *, artifact_path: str | None = None) -> None:
        self.check_artifacts_here(run_id)
        call("upload an artifact", self.client.log_artifact, run_id, str(path), artifact_path)

    def download(self, run_id: str, artifact_path: str, *, dst: Path) -> Path:
        fetched = call(
            f"download {artifact_path!r} of run {run_id}",
            mlflow.artifacts.download_artifacts,
            run_id=run_id,
            artifact_path=artifact_path,
            dst_path=str(dst),
            tracking_uri=self.uri,
        )
        return Path(fetched)

    def artifact_paths(self, run_id: str, folder: str) -> list[str]:
        """Paths of the files directly under a run's artifact `folder` ([] when it has none)."""
        found = call(f"list artifacts of run {run_id}", self.client.list_artifacts, run_id, folder)
        return [a.path for a in found if not a.is_dir]

    def end_run(self, run_id: str, *, status: link.RunStatus) -> None:
        RunStatus.from_string(status)  # refuse typos before writing
        call("close a run", self.client.set_terminated, run_id, status=status)

    def run_status(self, run_id: str) -> str | None:
        """The run's status, or None when this store has no such run."""
        try:
            return str(self.client.get_run(run_id).info.status)
        except MlflowException:
            return None

    def reopen(self, run_id: str) -> None:
        call("reopen a run", self.client.update_run, run_id, status=link.RUN_RUNNING)

    def log_dict(self, run_id: str, payload: dict[str, Any], filename: str) -> None:
        self.check_artifacts_here(run_id)
        call("upload a JSON artifact", self.client.log_dict, run_id, payload, filename)

    def run(self, run_id: str) -> RunRecord:
        return record(call(f"read run {run_id}", self.client.get_run, run_id))

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        rows = call("read metric history", self.client.get_metric_history, run_id, key)
        return sorted((int(m.step), float(m.value)) for m in rows)

    def log_model(
        self, run_id: str, model: nn.Module, *, example: np.ndarray, classes: int, about: dict[str, Any]
    ) -> str:
        """Log `model` (on the CPU) as the run's MLflow model, PyTorch flavour in the pt2 format (a
        traced graph: loading it needs torch, not hpo), with its signature (float32, any batch) and
        `example` as input example; it then appears in the UI's Models tab. Returns models:/m-..."""
        import mlflow.pytorch  # only when a model is logged

        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *example.shape[1:]))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes))]),
        )
        # MLflow checks the input example by loading the model: on the CPU, where the graph was made.
        # The logged model belongs to the run's experiment (MLflow would put it in Default).
        experiment = self.client.get_run(run_id).info.experiment_id
        env = {MLFLOW_PREDICTION_DEVICE: "cpu", "MLFLOW_EXPERIMENT_ID": experiment}
        with self._fluent(), mock.patch.dict(os.environ, env):  # restored after
            info = call(
                "log the model",
                mlflow.models.Model.log,
                artifact_path=None,  # deprecated in MLflow 3 (name= replaces it), yet still required
                name="model",
                flavor=mlflow.pytorch,
                run_id=run_id,
                pytorch_model=model,
                signature=signature,
                input_example=example,
                metadata=about,  # what the signature cannot say: the pixels' scale, the class names
                pip_requirements=[f"torch=={metadata.version('torch')}"],
            )
        return str(info.model_uri)

    def register_model(
        self, *, name: str, model_uri: str, tags: Mapping[str, object], description: str
    ) -> int:
        """A new version of the registered model `name` (created on first use); returns its number."""
        with self._fluent():
            found = call(
                "register the model", mlflow.register_model, model_uri, name, await_registration_for=0
            )
        version = str(found.version)
        call("describe the model", self.client.update_model_version, name, version, description=description)
        for key, value in tags.items():
            call("tag the model", self.client.set_model_version_tag, name, version, key, str(value))
        return int(version)

    @contextlib.contextmanager
    def _fluent(self) -> Iterator[None]:
        """MLflow's module-level calls (model logging, registry) read the process's tracking URI:
        point it at this store for the call. Setting it also sets MLFLOW_TRACKING_URI, which the CLI
        reads: put back exactly what was there (hpo itself never sets a global URI)."""
        before = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None unsets both

    def pending_models(self, experiment_id: str, *, older_than_s: float) -> list[str]:
        """Ids of the experiment's logged models still PENDING after `older_than_s` seconds: an
        export that never finished (its process was killed while writing the model)."""
        found = call("search logged models", self.client.search_logged_models, experiment_ids=[experiment_id])
        cutoff = (time.time() - older_than_s) * 1000
        return [m.model_id for m in found if m.status == "PENDING" and m.creation_timestamp < cutoff]

    def fail_model(self, model_id: str) -> None:
        """Mark a logged model FAILED (it stays, findable, but is never served)."""
        call("finalize a logged model", self.client.finalize_logged_model, model_id, "FAILED")

    def runs(self, experiment_id: str, *, where: str = "") -> list[RunRecord]:
        """The experiment's runs (newest first), filtered by an MLflow search string if given."""
        found = call(
            "search runs", self.client.search_runs, [experiment_id], filter_string=where, max_results=5000
        )
        return [record(r) for r in found]
