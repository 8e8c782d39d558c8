"""The link between the two stores: every key by which an Optuna study or trial points at MLflow
(and back), typed accessors for them, the vocabulary of a trial's end (`Outcome`, `TrialState`,
`RunStatus`, one table `OUTCOMES` between them, and `TrialEnd`, what a trial's end writes to
both stores). What a study was made with is `stores.spec`, stored under `SPEC`.

These strings are spelled here and nowhere else in the package. Renaming one orphans the
records of existing stores, so they never change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Outcome = Literal["completed", "pruned", "diverged", "interrupted", "failed"]  # how a run ended
TrialState = Literal["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"]  # Optuna's, by name
RunStatus = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]  # MLflow's
COMPLETE: TrialState = "COMPLETE"
PRUNED: TrialState = "PRUNED"
FAIL: TrialState = "FAIL"
RUNNING: TrialState = "RUNNING"
WAITING: TrialState = "WAITING"
RUN_RUNNING: RunStatus = "RUNNING"
FINISHED_STATES: tuple[TrialState, ...] = (COMPLETE, PRUNED, FAIL)
# A run's outcome -> (its Optuna trial state, its MLflow run status): one table decides both.
OUTCOMES: dict[Outcome, tuple[TrialState, RunStatus]] = {
    "completed": ("COMPLETE", "FINISHED"),
    "pruned": ("PRUNED", "KILLED"),  # the pruner stopped it: a result, cut short
    "diverged": ("PRUNED", "FAILED"),  # non-finite loss: pruned so the sampler learns to avoid it
    "interrupted": ("FAIL", "KILLED"),  # Ctrl-C or SIGTERM: re-run on resume
    "failed": ("FAIL", "FAILED"),  # an error, e.g. out of memory
}

# Optuna trial user attributes.
RUN_ID = "mlflow_run_id"  # the trial's MLflow child run
FAIL_REASON = "fail_reason"  # why a trial failed or was pruned early (diverged); also a run tag
DEVICE = "device"  # where it trained; also the run's tag, set by stores.runs.provenance
SAMPLER_SEED = "sampler_seed"  # the seed a random draw of the trial's parameters came from
PRECISION = "precision"  # config.PRECISIONS: how it trained (absent on trials before bf16: fp32)
BEST_EPOCH = "best_epoch"  # also a run tag
EPOCHS_RUN = "epochs_run"
SEED = "seed"  # the trial's own seed (weights, dropout, augmentation, batch order)
WARM_START = "warm_start"  # set on trials enqueued from hpo's known-good configurations
RETRY_OF = "retry_of"  # on a trial queued again because the trial of this number was interrupted
OUTCOME = "outcome"  # an OUTCOMES key; also a run tag
MODEL_URI = "model_uri"  # run tag: the run's MLflow model (models:/m-...), raw pixels -> probabilities
MODEL_LOG_ERROR = "model_log_error"  # run tag: why its MLflow model could not be logged
VAL_ACCURACY = "val_accuracy"  # metric: validation accuracy (per epoch; a baseline's, at step 0)
CHECKPOINT_PATH = "checkpoint"  # artifact folder of a run that holds model.pt + config.json
OWNER_HOST, OWNER_PID, OWNER_TOKEN = "host", "pid", "pid_token"  # the process running it
# What a trial costs (seconds per epoch): its probe before training, the probe times the study's
# calibration (what the budget went by), and the median of its measured epochs; also MLflow
# metrics of its run. THREADS: the CPU threads it trained with; FLOPS: one image's forward pass.
PROBE_EPOCH_S, PREDICTED_EPOCH_S, MEASURED_EPOCH_S = "probe_epoch_s", "predicted_epoch_s", "measured_epoch_s"
THREADS, FLOPS = "threads", "flops"
# What a model is, known before it trains (search.constraints): its parameters, and its CPU
# latency in ms at batch 1 and at the serving batch (64), and the same on the trial's device when
# that is not the CPU (a GPU); also MLflow metrics of its run.
PARAMETERS, CPU_LATENCY_MS, CPU_SERVING_MS = "parameters", "cpu_latency_ms", "cpu_latency_ms_batch64"
DEVICE_LATENCY_MS, DEVICE_SERVING_MS = "device_latency_ms", "device_latency_ms_batch64"
# A multi-objective study's second objective (config.OBJECTIVES) -> the trial attribute holding it.
SIZE_ATTRS = {"params": PARAMETERS, "latency": CPU_LATENCY_MS, "flops": FLOPS}
# Per-epoch validation accuracy of a multi-objective trial ({"1": 0.91, ...}): Optuna keeps no
# intermediate values there (its `report` refuses multi-objective trials).
CURVE = "curve"
# A final training (allocation under --budget): the trial whose configuration it trains again; and
# the epochs a trial's schedule spans when not the study's --epochs (a final, a short warm start).
FINAL_OF, SCHEDULE_EPOCHS = "final_of", "schedule_epochs"
RETRY_CARRIES = (
    WARM_START,
    FINAL_OF,
    SCHEDULE_EPOCHS,
)  # what a trial queued again keeps of the one it repeats
# Optuna study user attributes.
PARENT_RUN_ID = "mlflow_parent_run_id"  # the study's MLflow parent run
SPEC = "hpo_spec"  # StudySpec.to_attr()
TEST_EVALUATIONS = "test_evaluations"  # list of lockbox records; also a run tag holding the count
TARGET = "target_trials"  # the --trials of the latest search call: "done" means finished >= it...
LAST_STOP = "last_stop"  # ...or that call ran out of its --timeout ("timeout": a budget met)
# MLflow run tags.
ROLE = "hpo_role"  # "study" on the parent run
ROLE_STUDY = "study"
ROLE_TRIAL = "trial"  # a search trial (child of the study run)
ROLE_BASELINE = "baseline"  # a classical baseline fitted by `hpo baselines`
ROLE_REPRODUCE = "reproduce"  # a retraining of a trial by `hpo reproduce`
REPRODUCES = "reproduces_run_id"  # on a reproduction's run: the trial run it retrains
STUDY = "study"  # the study's name, on parent and child runs
TRIAL_VALUE = "trial_val_accuracy"  # metric: a trial's value, on its run and per trial on the parent
# metric: the best validation accuracy, a trial's own on its run, the study's so far on the parent
# (per trial): the one column where the UI's runs table shows each row's best, the study's too
BEST_VALUE = "best_val_accuracy"
TRIAL_NUMBER = "trial_number"
STATE = "state"  # the trial's Optuna state, mirrored on its run
PRUNED_AT_EPOCH = "pruned_at_epoch"  # also a trial attribute
# A trial's early look (search.early_look): validation accuracy a quarter into epoch 1, on a subset;
# a trial attribute, and a metric of its run at step 0.
EARLY_VAL = "early_val_accuracy"
BEST_TRIAL = "best_trial"  # on the parent run
BEST_RUN_ID = "best_run_id"  # on the parent run


@dataclass(frozen=True)
class TrialEnd:
    """How one trial ended, decided once (`hpo.search.trial_end.trial_end` for a trained trial) and
    written to both stores by the trial's recorder: MLflow first, then Optuna. Recovery records a
    dead process's trial with one too."""

    outcome: Outcome
    value: float = 0.0  # best validation accuracy; the trial's value when COMPLETE
    epochs_run: int = 0  # the last epoch run (0: it never finished an epoch)
    best_epoch: int = 0
    reason: str = ""  # why it failed or stopped early (a guard, divergence); "" otherwise
    epoch_seconds: float = 0.0  # median seconds of its finished epochs (0: none finished)

    @property
    def state(self) -> TrialState:
        return OUTCOMES[self.outcome][0]

    @property
    def status(self) -> RunStatus:
        return OUTCOMES[self.outcome][1]

    @property
    def trained(self) -> bool:
        """It ran to a result (completed, or stopped by a pruner, a guard or divergence)."""
        return self.outcome not in ("interrupted", "failed")

    def trial_attrs(self) -> dict[str, Any]:
        """The Optuna trial's user attributes that record this end."""
        attrs: dict[str, Any] = {OUTCOME: self.outcome}
        if self.trained:
            attrs |= {BEST_EPOCH: self.best_epoch, EPOCHS_RUN: self.epochs_run}
        if self.state == "PRUNED":
            attrs[PRUNED_AT_EPOCH] = self.epochs_run
        if self.reason:
            attrs[FAIL_REASON] = self.reason
        if self.epoch_seconds > 0:
            attrs[MEASURED_EPOCH_S] = round(self.epoch_seconds, 4)
        return attrs

    def run_tags(self) -> dict[str, object]:
        """The MLflow run's tags that record this end (the run's `outcome` tag is the run's own)."""
        tags: dict[str, object] = {STATE: self.state}
        if self.trained:
            tags[BEST_EPOCH] = self.best_epoch
        if self.state == "PRUNED":
            tags[PRUNED_AT_EPOCH] = str(self.epochs_run)
        if self.reason:
            tags[FAIL_REASON] = self.reason
        return tags


def run_statuses(*, state: str, outcome: object) -> tuple[RunStatus, ...]:
    """The MLflow statuses a finished trial's run may have: its recorded outcome's, else (a trial
    recorded before outcomes were) any that OUTCOMES maps its state to."""
    if outcome in OUTCOMES and OUTCOMES[outcome][0] == state:
        return (OUTCOMES[outcome][1],)
    return tuple(dict.fromkeys(status for s, status in OUTCOMES.values() if s == state))


class HasAttrs(Protocol):
    @property
    def attrs(self) -> dict[str, Any]: ...


class StudyAttrs(Protocol):
    def attr(self, key: str, default: Any = None) -> Any: ...
    def set_attr(self, key: str, value: Any) -> None: ...


def run_id(trial: HasAttrs) -> str:
    """The trial's MLflow run id, "" when it never started one."""
    return str(trial.attrs.get(RUN_ID) or "")


def schedule_epochs(trial: HasAttrs, *, study_epochs: int) -> int:
    """The epochs the trial's schedule spans: its own (SCHEDULE_EPOCHS), else the study's."""
    return int(trial.attrs.get(SCHEDULE_EPOCHS) or study_epochs)


def parent_run_id(study: StudyAttrs) -> str:
    return str(study.attr(PARENT_RUN_ID) or "")


def lockbox_records(study: StudyAttrs) -> list[dict[str, Any]]:
    """The lockbox records of the study, oldest first."""
    return list(study.attr(TEST_EVALUATIONS, None) or [])


def trial_run_name(number: int) -> str:
    return f"trial-{number:04d}"
