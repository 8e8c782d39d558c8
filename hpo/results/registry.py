"""The Model Registry: a study's best trial as a new version of a registered MLflow model, with
where it came from (study, trial, validation accuracy, lockbox record) as tags and description."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from hpo.errors import CheckpointError, ConfigError
from hpo.search.space import config_from_params, describe
from hpo.stores import link
from hpo.stores.mlflow import MLFLOW_PREDICTION_DEVICE
from hpo.stores.spec import StudySpec
from hpo.stores.workspace import BestInfo, Workspace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True)
class Registered:
    name: str
    version: int
    model_uri: str  # the trial run's logged model
    run_id: str
    trial: int
    val_accuracy: float
    tracking_uri: str  # the store the registry lives in: a fresh process must be pointed at it
    io_text: str  # what the model takes and answers (_io_text)

    @property
    def registry_uri(self) -> str:
        """What `mlflow.pyfunc.load_model` takes."""
        return f"models:/{self.name}/{self.version}"

    # The logged graph holds its weights on the CPU: MLflow would load it onto a GPU where there is
    # one, and refuse (seen on an H200 machine), so both ways of loading it name the CPU.
    def serve_command(self, *, port: int = 5001) -> str:
        """A shell line serving the version over HTTP from any folder, in this environment (MLflow's
        default would build a new virtualenv, which needs the network)."""
        return (
            f"MLFLOW_TRACKING_URI={shlex.quote(self.tracking_uri)} {MLFLOW_PREDICTION_DEVICE}=cpu "
            f"mlflow models serve -m {shlex.quote(self.registry_uri)} --env-manager local --port {port}"
        )

    def python_lines(self) -> str:
        """Python that loads the version in any process that has MLflow and torch."""
        return (
            f"import mlflow; mlflow.set_tracking_uri({self.tracking_uri!r}); "
            f"model = mlflow.pyfunc.load_model({self.registry_uri!r}, model_config={{'device': 'cpu'}})"
        )


def _provenance(info: BestInfo) -> tuple[dict[str, object], str]:
    """Tags and a markdown description: which study, trial and configuration, how good."""
    trial, value = info.trial, info.trial.value or 0.0
    cfg = config_from_params(trial.params)
    looks = [r for r in info.evaluations if "accuracy" in r and r.get("trial") == trial.number]
    tags: dict[str, object] = {
        link.STUDY: info.study,
        link.TRIAL_NUMBER: trial.number,
        link.VAL_ACCURACY: f"{value:.4f}",
        "source_run_id": info.run_id,
        "test_accuracy": f"{looks[-1]['accuracy']:.4f}" if looks else "not evaluated",
    }
    test = (
        f"test accuracy {100 * looks[-1]['accuracy']:.2f}% (lockbox, {looks[-1]['time']})"
        if looks
        else "not evaluated on the test set"
    )
    what = describe(cfg) if cfg else "configuration unknown"
    text = (
        f"Best trial {trial.number} of study `{info.study}`: {what}. "
        f"Validation accuracy {100 * value:.2f}%; {test}. {_io_text(info.spec).capitalize()}, as in the "
        "training data. The graph runs on the CPU: on a CUDA machine load it with "
        "`model_config={'device': 'cpu'}`."
    )
    return tags, text


def register_best(ws: Workspace, *, study: str | None, name: str, pick: int | None = None) -> Registered:
    """Register the study's best trial's model (or trial `pick`'s) as a new version of `name`."""
    if not _NAME.match(name):
        raise ConfigError(f"--register {name!r}: use letters, digits, '.', '_' or '-' (e.g. mnist-best)")
    info = ws.best(study, pick=pick)
    if not info.run_id:
        raise CheckpointError("the best trial has no MLflow run, so it has no model to register")
    uri = ws.served_model_uri(info.run_id)
    tags, description = _provenance(info)
    version = ws.mlflow.register_model(name=name, model_uri=uri, tags=tags, description=description)
    return Registered(
        name=name,
        version=version,
        model_uri=uri,
        run_id=info.run_id,
        trial=info.trial.number,
        val_accuracy=info.trial.value or 0.0,
        tracking_uri=ws.mlflow.uri,
        io_text=_io_text(info.spec),
    )


def _io_text(spec: StudySpec | None) -> str:
    """What the served model takes and answers, for a person: 'input: float32 (N, 28, 28) pixels
    ...'; a study not made by `hpo search` records no data: it was MNIST-shaped."""
    channels, height, width = spec.shape if spec else (1, 28, 28)
    classes = len(spec.class_names) if spec else 10
    pixels = f"(N, {height}, {width})" if channels == 1 else f"(N, {channels}, {height}, {width})"
    scale = "0-255 or 0-1 (decided per image)"
    return f"input: float32 {pixels} pixels, {scale}; output: (N, {classes}) probabilities"
