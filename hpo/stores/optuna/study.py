"""Study and trial handles over an Optuna study: trial rows, counts, the claim of a trial against
the study's target, heartbeats. Part of `hpo.stores.optuna`, the only package that imports optuna."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo import signals
from hpo.errors import StudyError
from hpo.stores.locks import store_lock
from hpo.stores.optuna.storage import HEARTBEAT_S, METRIC, make_sampler


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None
    params: dict[str, Any]
    attrs: dict[str, Any]
    seconds: float | None
    started: str  # ISO time or ""
    curve: dict[int, float] = field(default_factory=dict)  # epoch -> val accuracy


@dataclass(frozen=True)
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0

    @property
    def finished(self) -> int:
        """Trials that count towards the target: complete + pruned."""
        return self.complete + self.pruned


def _row(t: optuna.trial.FrozenTrial) -> TrialRow:
    seconds = t.duration.total_seconds() if t.duration is not None else None
    return TrialRow(
        number=t.number,
        state=t.state.name,
        value=t.value if t.values else None,
        params=dict(t.params),
        attrs=dict(t.user_attrs),
        seconds=seconds,
        started=t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
        curve={int(k): float(v) for k, v in t.intermediate_values.items()},
    )


class TrialHandle:
    """One running trial: report, prune decision, and its final state."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self._study, self._trial, self.number = study, trial, trial.number
        self.trial_id: int = trial._trial_id  # the storage key, for heartbeats

    @property
    def suggest(self) -> optuna.Trial:
        """The object `space.sample` calls suggest_* on."""
        return self._trial

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._trial.params)

    def set_attrs(self, **attrs: Any) -> None:
        with signals.deferred():  # store writes are never cut in half by Ctrl-C (hpo.signals)
            for key, value in attrs.items():
                self._trial.set_user_attr(key, value)

    def report(self, value: float, *, step: int) -> bool:
        """Record the epoch's validation accuracy; True when the pruner says stop."""
        with signals.deferred():
            self._trial.report(value, step)
        return bool(self._trial.should_prune())

    def attr(self, key: str) -> Any:
        return self._trial.user_attrs.get(key)

    def tell(self, state: str, value: float = 0.0) -> None:
        """End the trial: COMPLETE (with `value`), PRUNED or FAIL."""
        with signals.deferred():
            if state == "COMPLETE":
                self._study.tell(self._trial, value)
            else:
                self._study.tell(self._trial, state=TrialState[state])


class StudyHandle:
    def __init__(self, study: optuna.Study, storage: optuna.storages.RDBStorage) -> None:
        self.study, self.storage = study, storage
        self.name: str = study.study_name
        self.id: int = storage.get_study_id_from_name(self.name)  # optuna-dashboard's URL uses it

    def attr(self, key: str, default: Any = None) -> Any:
        return self.study.user_attrs.get(key, default)

    def set_attr(self, key: str, value: Any) -> None:
        with signals.deferred():
            self.study.set_user_attr(key, value)

    def rows(self, *, states: tuple[str, ...] | None = None) -> list[TrialRow]:
        wanted = tuple(TrialState[s] for s in states) if states else None
        return [_row(t) for t in self.study.get_trials(deepcopy=False, states=wanted)]

    def counts(self) -> Counts:
        tally = {s: 0 for s in TrialState}
        for t in self.study.get_trials(deepcopy=False):
            tally[t.state] += 1
        return Counts(
            complete=tally[TrialState.COMPLETE],
            pruned=tally[TrialState.PRUNED],
            failed=tally[TrialState.FAIL],
            running=tally[TrialState.RUNNING],
        )

    def best(self) -> TrialRow | None:
        done = self.rows(states=("COMPLETE",))
        return max(done, key=lambda r: (r.value or 0.0, -r.number)) if done else None

    def row(self, number: int) -> TrialRow:
        return _row(self.study.get_trials(deepcopy=False)[number])

    def enqueue(self, params: dict[str, Any], *, attrs: dict[str, Any]) -> None:
        """A trial the next `ask` takes first, with these parameters, as an ordinary trial."""
        with signals.deferred():
            self.study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)

    def claim(self, *, target: int, attrs: dict[str, Any], sampler: str, seed: int) -> TrialHandle | None:
        """Start a trial owned by the caller unless finished + running trials already reach
        `target`. The check and the start happen under the store lock (a file lock on SQLite, an
        advisory lock on PostgreSQL), so workers on any host never overshoot the target.

        The sampler is seeded per claim from `seed` and the number of trials in the study (unique
        under the lock): concurrent workers never draw the same random start-up configuration,
        and one process alone draws the same sequence for the same `seed`."""
        with store_lock(self.storage):
            c = self.counts()
            if c.finished + c.running >= target:
                return None
            drawn = (seed + 1009 * len(self.study.get_trials(deepcopy=False))) % 2**31
            self.study.sampler = make_sampler(sampler, seed=drawn)
            with signals.deferred():  # a claimed trial always records its owner
                trial = TrialHandle(self.study, self.study.ask())
                trial.set_attrs(**attrs, sampler_seed=drawn)
        with contextlib.suppress(Exception):  # a first heartbeat, so other hosts can judge it
            self.storage.record_heartbeat(trial.trial_id)
        return trial

    def fail_running(self, number: int, *, attrs: dict[str, Any]) -> None:
        """Mark a trial left RUNNING by a dead process as FAIL, recording `attrs` (the reason)."""
        trial = self.study.get_trials(deepcopy=False)[number]
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(trial._trial_id, key, value)
        self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)

    def fail_stale(self, *, reason_key: str, retry_key: str) -> list[int]:
        """Trials whose heartbeat stopped (any host: its process or machine died) become FAIL with
        the reason under `reason_key`, and each is queued again with the same parameters (attr
        `retry_key`: the failed trial's number; a retry that goes stale too is not re-queued).
        Returns the numbers failed here. Run before every claim, under the store lock."""
        failed = []
        with store_lock(self.storage):
            # Optuna's own query for "heartbeat older than the grace period" (no public accessor).
            for trial_id in self.storage._get_stale_trial_ids(self.study._study_id):
                trial = self.storage.get_trial(trial_id)
                host = trial.user_attrs.get("host", "its host")
                reason = f"no heartbeat from {host} for over {self.storage.grace_period} s: its process died"
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError), signals.deferred():
                    self.storage.set_trial_user_attr(trial_id, reason_key, reason)
                    self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
                    failed.append(trial.number)
                    if retry_key not in trial.user_attrs:
                        self._requeue(trial, attrs={retry_key: trial.number})
        return failed

    def _requeue(self, trial: optuna.trial.FrozenTrial, *, attrs: dict[str, Any]) -> None:
        """A WAITING copy of `trial` (same parameters) that the next claim takes first."""
        copy = optuna.trial.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions, user_attrs=attrs
        )
        self.study.add_trial(copy)

    @contextlib.contextmanager
    def heartbeat(self, trial: TrialHandle) -> Iterator[None]:
        """Touch the trial's heartbeat every interval (HEARTBEAT_S, or HPO_HEARTBEAT_S) while the
        block runs."""
        interval = float(self.storage.heartbeat_interval or HEARTBEAT_S)
        stop = threading.Event()

        def beat() -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):  # a missed beat is retried next interval
                    self.storage.record_heartbeat(trial.trial_id)
                stop.wait(interval)

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def study_names(storage: optuna.storages.RDBStorage) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


def load_study(storage: optuna.storages.RDBStorage, name: str) -> StudyHandle:
    if name not in study_names(storage):
        known = ", ".join(study_names(storage)) or "none yet"
        raise StudyError(f"no study named {name!r} in this store (studies: {known}); check --study/--storage")
    return StudyHandle(optuna.load_study(study_name=name, storage=storage), storage)


def create_or_resume(
    storage: optuna.storages.RDBStorage,
    *,
    name: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> tuple[StudyHandle, bool]:
    """The study `name`, created if this store has none. Returns (handle, resumed)."""
    resumed = name in study_names(storage)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    if study.metric_names is None:  # so optuna-dashboard shows "val_accuracy", not "Objective 0"
        with signals.deferred():
            study.set_metric_names([METRIC])
    return StudyHandle(study, storage), resumed


def param_importances(handle: StudyHandle) -> dict[str, float]:
    """Importances over complete trials (Optuna's default evaluator); {} when too few trials."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(handle.study))
    except (RuntimeError, ValueError):
        return {}
