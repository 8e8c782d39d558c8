"""The study handle over an Optuna study: trial rows, counts, the claim of a trial against
the study's target, heartbeats. Part of `hpo.stores.optuna`, the only package that imports optuna."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.trial import TrialState

from hpo.stores import link
from hpo.stores.optuna.private import fixed_params, stale_trial_ids, trial_id
from hpo.stores.optuna.storage import make_sampler
from hpo.stores.optuna.trial import Counts, TrialHandle, TrialRow, row_of, writing


class StudyHandle:
    """One study of a store: its attributes, trial rows and counts, the claim of a trial, the
    failure of dead trials, heartbeats. Built by `StudyStore`; Optuna's objects stay inside."""

    def __init__(
        self, study: optuna.Study, storage: optuna.storages.RDBStorage, *, lock: Callable[[], Any]
    ) -> None:
        self._study, self._storage, self._lock = study, storage, lock
        self.name: str = study.study_name
        self.id: int = storage.get_study_id_from_name(self.name)  # optuna-dashboard's URL uses it

    @property
    def multi(self) -> bool:
        """A multi-objective study (accuracy and a size): its best is a front, not one trial."""
        return len(self._study.directions) > 1

    @property
    def heartbeat_interval(self) -> int:
        """Seconds between a live trial's heartbeats (HPO_HEARTBEAT_S)."""
        return int(self._storage.heartbeat_interval or 1)

    def lock(self) -> Any:
        """The store lock (`hpo.stores.locks`), as a context manager."""
        return self._lock()

    def attr(self, key: str, default: Any = None) -> Any:
        return self._study.user_attrs.get(key, default)

    def set_attr(self, key: str, value: Any) -> None:
        with writing("set a study attribute"):
            self._study.set_user_attr(key, value)

    def rows(self, *, states: tuple[link.TrialState, ...] | None = None) -> list[TrialRow]:
        wanted = tuple(TrialState[s] for s in states) if states else None
        return [row_of(t) for t in self._study.get_trials(deepcopy=False, states=wanted)]

    def counts(self) -> Counts:
        tally = {s: 0 for s in TrialState}
        for t in self._study.get_trials(deepcopy=False):
            tally[t.state] += 1
        return Counts(
            complete=tally[TrialState.COMPLETE],
            pruned=tally[TrialState.PRUNED],
            failed=tally[TrialState.FAIL],
            running=tally[TrialState.RUNNING],
        )

    def best(self) -> TrialRow | None:
        done = self.rows(states=(link.COMPLETE,))
        return max(done, key=lambda r: (r.value or 0.0, -r.number)) if done else None

    def row(self, number: int) -> TrialRow:
        return row_of(self._study.get_trials(deepcopy=False)[number])

    def enqueue(self, params: dict[str, Any], *, attrs: dict[str, Any], again: bool = False) -> None:
        """A trial the next `ask` takes first, with these parameters, as an ordinary trial; not
        when a trial has them already, unless `again` (a configuration trained once more)."""
        with writing("queue a trial"):
            self._study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=not again)

    def queued_params(self) -> list[dict[str, Any]]:
        """The parameters of the trials queued with `enqueue` and not yet taken, oldest first."""
        waiting = self._study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return [fixed_params(t) for t in waiting]

    def claim(self, *, target: int, attrs: dict[str, Any], sampler: str, seed: int) -> TrialHandle | None:
        """Start a trial owned by the caller unless finished + running trials already reach
        `target`. The check and the start happen under the store lock (a file lock on SQLite, an
        advisory lock on PostgreSQL), so workers on any host never overshoot the target.

        The sampler is seeded per claim from `seed` and the number of trials in the study (unique
        under the lock): concurrent workers never draw the same random start-up configuration,
        and one process alone draws the same sequence for the same `seed`."""
        with self._lock():
            c = self.counts()
            if c.finished + c.running >= target:
                return None
            drawn = (seed + 1009 * len(self._study.get_trials(deepcopy=False))) % 2**31
            self._study.sampler = make_sampler(sampler, seed=drawn)
            with writing("claim a trial"):  # a claimed trial always records its owner
                trial = TrialHandle(self._study, self._study.ask())
                trial.set_attrs(**attrs, **{link.SAMPLER_SEED: drawn})
        with contextlib.suppress(Exception):  # a first heartbeat, so other hosts can judge it
            self._storage.record_heartbeat(trial.trial_id)
        return trial

    def fail_running(self, number: int, *, attrs: dict[str, Any]) -> None:
        """Mark a trial left RUNNING by a dead process as FAIL, recording `attrs` (the reason)."""
        trial = self._study.get_trials(deepcopy=False)[number]
        with writing("fail a dead process's trial"):
            for key, value in attrs.items():
                self._storage.set_trial_user_attr(trial_id(trial), key, value)
            self._storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL)

    @property
    def grace_period(self) -> int:
        """Seconds without a heartbeat after which a RUNNING trial is stale (HPO_GRACE_S)."""
        return int(self._storage.grace_period or 0)

    def fail_stale(
        self,
        *,
        reason: Callable[[dict[str, Any]], str],
        reason_key: str,
        retry_key: str,
        carry: tuple[str, ...] = (),
    ) -> list[int]:
        """Trials whose heartbeat stopped (any host: its process or machine died) become FAIL with
        `reason(their attrs)` under `reason_key`, and each is queued again with the same parameters
        (attr `retry_key`: the failed trial's number, with its attrs named in `carry`; a retry that
        goes stale too is not re-queued).
        Returns the numbers failed here. Run before every claim, under the store lock.

        Not `optuna.storages.fail_stale_trials` with `RetryHeartbeatStaleTrialCallback`: it sets
        FAIL first and calls the callback after, when a finished trial refuses user attrs, so the
        reason could not be recorded; its retry copies the dead trial's user attrs (its MLflow run
        id and owner) onto the new trial; and it takes no lock, so two hosts could both re-queue."""
        failed = []
        with self._lock():
            for stale in stale_trial_ids(self._storage, self._study):
                trial = self._storage.get_trial(stale)
                with (
                    contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError),
                    writing("fail a stale trial"),
                ):
                    self._storage.set_trial_user_attr(stale, reason_key, reason(dict(trial.user_attrs)))
                    self._storage.set_trial_state_values(stale, state=TrialState.FAIL)
                    failed.append(trial.number)
                    if retry_key not in trial.user_attrs:
                        self._requeue(trial, attrs={retry_key: trial.number}, carry=carry)
        return failed

    def requeue(self, number: int, *, attrs: dict[str, Any], carry: tuple[str, ...] = ()) -> bool:
        """Queue trial `number` to run again (a WAITING copy with its parameters, `attrs`, and its
        own attrs named in `carry`); the next claim takes it first. False when it had drawn no
        parameter yet: there is nothing to repeat, the sampler draws anew."""
        trial = self._study.get_trials(deepcopy=False)[number]
        if not trial.params:
            return False
        with writing("queue a trial again"):
            self._requeue(trial, attrs=attrs, carry=carry)
        return True

    def _requeue(
        self, trial: optuna.trial.FrozenTrial, *, attrs: dict[str, Any], carry: tuple[str, ...]
    ) -> None:
        kept = {key: trial.user_attrs[key] for key in carry if key in trial.user_attrs}
        copy = optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={**kept, **attrs},
        )
        self._study.add_trial(copy)

    @contextlib.contextmanager
    def heartbeat(self, trial: TrialHandle) -> Iterator[None]:
        """Touch the trial's heartbeat every interval (HEARTBEAT_S, or HPO_HEARTBEAT_S) while the
        block runs."""
        interval = float(self.heartbeat_interval)
        stop = threading.Event()

        def beat() -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):  # a missed beat is retried next interval
                    self._storage.record_heartbeat(trial.trial_id)
                stop.wait(interval)

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def param_importances(handle: StudyHandle) -> dict[str, float]:
    """Importances over complete trials (Optuna's default evaluator); {} when too few trials."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target = (lambda t: t.values[0]) if handle.multi else None  # accuracy on a front
            return dict(optuna.importance.get_param_importances(handle._study, target=target))
    except (RuntimeError, ValueError):
        return {}
