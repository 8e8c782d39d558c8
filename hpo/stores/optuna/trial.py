"""Trial rows and the handle on one running trial (its reports, constraints and final state), and
`writing`, the guard around every write to a study store. Part of `hpo.stores.optuna`, the only
package that imports optuna."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import optuna
from optuna.trial import TrialState

from hpo import signals
from hpo.errors import StudyError, TrialTakenError, first_line
from hpo.stores import link
from hpo.stores.optuna.private import trial_id


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: link.TrialState
    value: float | None  # the validation accuracy (a multi-objective study's first value)
    params: dict[str, Any]
    attrs: dict[str, Any]
    seconds: float | None
    started: str  # ISO time or ""
    curve: dict[int, float] = field(default_factory=dict)  # epoch -> val accuracy
    values: tuple[float, ...] = ()  # every objective's value (complete trials)


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


def row_of(t: optuna.trial.FrozenTrial) -> TrialRow:
    """The typed, store-free copy of a frozen trial that the rest of hpo reads."""
    seconds = t.duration.total_seconds() if t.duration is not None else None
    return TrialRow(
        number=t.number,
        state=cast(link.TrialState, t.state.name),
        value=t.values[0] if t.values else None,
        params=dict(t.params),
        attrs=dict(t.user_attrs),
        seconds=seconds,
        started=t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
        curve={
            int(k): float(v) for k, v in (t.intermediate_values or t.user_attrs.get(link.CURVE) or {}).items()
        },
        values=tuple(t.values or ()),
    )


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    """A write to the study store: with SIGINT/SIGTERM deferred (`hpo.signals`: never cut in half
    by Ctrl-C), and a failure said in one line with its cause. Optuna reports a failed commit as
    "invalid data ... exceeding max length" whatever happened; the cause (SQLite's "database or
    disk is full", a lost server) is in the exception's chain."""
    try:
        with signals.deferred():
            yield
    except optuna.exceptions.StorageInternalError as exc:
        cause = root_cause(exc)
        advice = "; free space on the disk that holds it" if "full" in cause or "space" in cause else ""
        raise StudyError(f"study store: cannot {what}: {cause}{advice}") from exc


def root_cause(exc: BaseException) -> str:
    """The first line of the innermost exception a chain was raised from (a driver's own words,
    e.g. "database or disk is full"), without SQLAlchemy's "(sqlite3.OperationalError)" prefix."""
    while exc.__cause__ is not None or getattr(exc, "orig", None) is not None:
        exc = getattr(exc, "orig", None) or exc.__cause__  # type: ignore[assignment]
    return first_line(exc)


class TrialHandle:
    """One running trial: report, prune decision, and its final state."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self._study, self._trial, self.number = study, trial, trial.number
        self.trial_id = trial_id(trial)  # the storage key, for heartbeats
        self.multi = len(study.directions) > 1  # Optuna prunes no multi-objective trial

    @property
    def suggest(self) -> optuna.Trial:
        """The object `space.sample` calls suggest_* on."""
        return self._trial

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._trial.params)

    @contextlib.contextmanager
    def _owned(self, what: str) -> Iterator[None]:
        """A write to this trial, which another process may have failed meanwhile (`fail_stale`)."""
        try:
            with writing(what):
                yield
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            raise self._taken() from exc

    def _taken(self) -> TrialTakenError:
        return TrialTakenError(
            f"study store: trial {self.number} was ended by another process (its heartbeat came late); "
            "it runs again from the queue"
        )

    def set_attrs(self, **attrs: Any) -> None:
        with self._owned("record trial attributes"):
            for key, value in attrs.items():
                self._trial.set_user_attr(key, value)

    def set_constraints(self, values: dict[str, float]) -> None:
        """Optuna's constraint values (feasible when each is <= 0), which its samplers read."""
        with self._owned("record the trial's constraints"):
            for key, value in values.items():
                self._trial.set_constraint(key, value)

    def report(self, value: float, *, step: int, rungs: bool = True) -> bool:
        """Record the epoch's validation accuracy; True when the pruner says stop. `rungs` False:
        recorded, but the pruner is not asked, so the value never enters its rungs (Optuna's
        successive halving files a value at a rung only when asked): for a trial on a schedule
        other than the study's, whose epoch n is at another learning rate (a 3-epoch warm start's
        epoch 3 is annealed, 91.9% on Fashion-MNIST, where a 10-epoch CNN's is ~89%). A
        multi-objective trial keeps it in a user attribute (Optuna's `report` refuses those
        trials): never stopped here, hpo's own rule decides (`search.pareto`)."""
        with self._owned("report an epoch"):
            if self.multi:
                curve = dict(self._trial.user_attrs.get(link.CURVE) or {})
                self._trial.set_user_attr(link.CURVE, {**curve, str(step): value})
                return False
            self._trial.report(value, step)
            return rungs and bool(self._trial.should_prune())

    def attr(self, key: str) -> Any:
        return self._trial.user_attrs.get(key)

    def tell(self, state: link.TrialState, value: float = 0.0, *, minimized: tuple[float, ...] = ()) -> None:
        """End the trial: COMPLETE (with `value`, and a multi-objective study's `minimized`
        values), PRUNED or FAIL."""
        with self._owned("end a trial"):
            if state == link.COMPLETE:
                values = [value, *minimized] if self.multi else value
                ended = self._study.tell(self._trial, values, skip_if_finished=True)
            else:
                ended = self._study.tell(self._trial, state=TrialState[state], skip_if_finished=True)
        if ended.state.name != state:  # it was finished already, by another process
            raise self._taken()
