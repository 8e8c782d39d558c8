"""A project's two stores behind one handle, the way the CLI (and a notebook) reaches results:
which studies there are, which study is meant, its best trial, and that trial's model.

The CLI builds one `Workspace` per command and calls it. Each store is opened on first use, so
commands that need only the study store never touch MLflow."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import CheckpointError, StudyError, TrackingError
from hpo.stores import link
from hpo.stores.optuna import DEFAULT_STORAGE, Counts, StudyHandle, StudyStore, TrialRow
from hpo.stores.spec import StudySpec, read_spec
from hpo.stores.sqlite import db_path

if TYPE_CHECKING:  # imported where used: `hpo studies` and `hpo trials` need neither torch nor MLflow
    from hpo.core.checkpoint import LoadedModel
    from hpo.stores.mlflow import MlflowStore


@dataclass(frozen=True)
class StudySummary:
    name: str
    counts: Counts
    best: float | None  # best validation accuracy, None before a trial completes
    test_uses: int  # lockbox records of this study
    split_uses: int = 0  # lockbox records of every study on the same split
    stale: bool = False  # the last test look was of a trial that is no longer the best


@dataclass(frozen=True)
class Baseline:
    name: str  # e.g. "knn"
    val_accuracy: float
    fit_seconds: float


@dataclass(frozen=True)
class BestInfo:
    study: str
    trial: TrialRow
    run_id: str
    checkpoint_uri: str
    spec: StudySpec | None
    evaluations: list[dict[str, Any]]  # lockbox records, oldest first
    baseline: Baseline | None = None  # the best classical baseline on the same split, if fitted
    split_looks: int = 0  # test looks at this split by every study of the store
    picked: bool = False  # the trial was chosen (--pick, --max-params), not the most accurate


def _fingerprint(study: StudyHandle) -> str:
    spec = read_spec(study)
    return spec.fingerprint if spec else ""


class Workspace:
    """Both stores of one project: the Optuna study store and the MLflow tracking store."""

    def __init__(
        self,
        *,
        storage: str = DEFAULT_STORAGE,
        tracking_uri: str | None = None,
        create: bool = False,
        create_tracking: bool | None = None,
    ) -> None:
        """`create`: make missing stores (a search); by default both must exist, so reading a
        project never leaves an empty store behind. `create_tracking` overrides it for MLflow's."""
        self.storage_url, self.tracking_uri = storage, tracking_uri
        self.create = create
        self.create_tracking = create if create_tracking is None else create_tracking

    @cached_property
    def studies(self) -> StudyStore:
        return StudyStore(self.storage_url, create=self.create)

    @cached_property
    def mlflow(self) -> MlflowStore:
        from hpo.stores.mlflow import MlflowStore

        return MlflowStore(uri=self.tracking_uri, create=self.create_tracking)

    def has_study_store(self) -> bool:
        """Whether the study store exists (always assumed of a database server)."""
        path = db_path(self.storage_url)
        return path is None or path.exists()

    def study_names(self) -> list[str]:
        return self.studies.names()

    def study(self, name: str | None) -> StudyHandle:
        """The named study, or the only one in the store when no name is given."""
        if name:
            return self.studies.load(name)
        names = self.study_names()
        if len(names) == 1:
            return self.studies.load(names[0])
        if not names:
            raise StudyError("this store has no studies yet: run `hpo search` first, or check --storage")
        raise StudyError(f"this store has several studies ({', '.join(names)}): choose one with --study")

    def summaries(self) -> list[StudySummary]:
        """One row per study: trial counts by state, best value, test-set uses."""
        handles = [self.studies.load(name) for name in self.study_names()]
        looks: dict[str, int] = {}  # split fingerprint -> test looks across studies
        for handle in handles:
            fingerprint = _fingerprint(handle)
            looks[fingerprint] = looks.get(fingerprint, 0) + len(link.lockbox_records(handle))
        rows = []
        for handle in handles:
            best, records = handle.best(), link.lockbox_records(handle)
            rows.append(
                StudySummary(
                    name=handle.name,
                    counts=handle.counts(),
                    best=best.value if best else None,
                    test_uses=len(records),
                    split_uses=looks[_fingerprint(handle)],
                    stale=bool(records and best and records[-1].get("trial") != best.number),
                )
            )
        return rows

    def split_looks(self, fingerprint: str) -> list[tuple[str, dict[str, Any]]]:
        """(study, lockbox record) of every study in the store made on this split, oldest first
        per study: the test split is one, whichever study looks at it."""
        found = []
        for name in self.study_names():
            handle = self.studies.load(name)
            if _fingerprint(handle) == fingerprint:
                found += [(name, record) for record in link.lockbox_records(handle)]
        return found

    def best_trial(self, study: StudyHandle, *, pick: int | None = None) -> TrialRow:
        """The study's most accurate complete trial, or the complete trial numbered `pick`."""
        if pick is not None:
            row = next((r for r in study.rows() if r.number == pick), None)
            if row is None or row.state != link.COMPLETE:
                why = "no such trial" if row is None else f"it is {row.state}"
                raise StudyError(
                    f"--pick {pick}: study {study.name!r} has no complete trial {pick} ({why}); "
                    "`hpo trials` lists them, `hpo best` shows a multi-objective study's front"
                )
            return row
        best = study.best()
        if best is None:
            raise StudyError(
                f"study {study.name!r} has no complete trial yet: run `hpo search` until one completes"
            )
        return best

    def best(self, name: str | None, *, pick: int | None = None) -> BestInfo:
        """The best trial of a study (or trial `pick`), where its checkpoint is, and the study's
        lockbox records."""
        handle = self.study(name)
        best = self.best_trial(handle, pick=pick)
        run_id = link.run_id(best)
        uri = f"{self.mlflow.run(run_id).artifact_uri}/{link.CHECKPOINT_PATH}" if run_id else ""
        return BestInfo(
            study=handle.name,
            trial=best,
            run_id=run_id,
            checkpoint_uri=uri,
            spec=read_spec(handle),
            evaluations=link.lockbox_records(handle),
            baseline=self.best_baseline(handle.name),
            split_looks=len(self.split_looks(_fingerprint(handle))),
            picked=pick is not None,
        )

    def baselines(self, study: str) -> list[Baseline]:
        """The `hpo baselines` runs in the study's experiment, best first ([] when none was fitted)."""
        experiment = self.mlflow.find_experiment(study)
        if experiment is None:
            return []
        runs = self.mlflow.runs(experiment, where=f"tags.{link.ROLE} = '{link.ROLE_BASELINE}'")
        scored = [r for r in runs if r.status == "FINISHED" and link.VAL_ACCURACY in r.metrics]
        found = [
            Baseline(
                name=r.params.get("baseline", r.name),
                val_accuracy=r.metrics[link.VAL_ACCURACY],
                fit_seconds=r.metrics.get("fit_seconds", 0.0),
            )
            for r in scored
        ]
        return sorted(found, key=lambda b: -b.val_accuracy)

    def best_baseline(self, study: str) -> Baseline | None:
        """The best `hpo baselines` run in the study's experiment, None when none was fitted."""
        found = self.baselines(study)
        return found[0] if found else None

    def load_model(self, run_id: str) -> LoadedModel:
        """Download a run's checkpoint and rebuild the model from it alone (on the CPU)."""
        from hpo.core.checkpoint import read_checkpoint

        if not run_id:
            raise CheckpointError("the best trial has no MLflow run id, so no checkpoint can be found")
        with tempfile.TemporaryDirectory(prefix="hpo-ckpt-") as tmp:
            try:
                folder = self.mlflow.download(run_id, link.CHECKPOINT_PATH, dst=Path(tmp))
            except TrackingError as exc:
                raise CheckpointError(
                    f"the checkpoint of run {run_id} cannot be read ({exc}); was mlruns/artifacts deleted?"
                ) from exc
            return read_checkpoint(folder)

    def served_model_uri(self, run_id: str) -> str:
        """The run's logged MLflow model (models:/m-...). A search logs one only for the best trial,
        when the search call ends; a trial without one (an older study, a search that was stopped)
        gets one here from its checkpoint."""
        import torch

        from hpo.stores.runs import log_served_model

        with self.studies.lock():  # processes ending together export the best trial once
            uri = self.mlflow.run(run_id).tags.get(link.MODEL_URI, "")
            if uri:
                return uri
            loaded = self.load_model(run_id)
            cfg = loaded.model_config
            example = torch.zeros(2, *cfg.in_shape)
            classes = tuple(loaded.meta.get("classes") or map(str, range(cfg.classes)))
            uri = log_served_model(
                self.mlflow,
                run_id,
                model=loaded.model,
                normalization=loaded.normalization,
                example=example,
                classes=classes,
            )
        if not uri:
            reason = self.mlflow.run(run_id).tags.get(link.MODEL_LOG_ERROR, "unknown reason")
            raise CheckpointError(f"the best trial's model could not be logged as an MLflow model: {reason}")
        return uri
