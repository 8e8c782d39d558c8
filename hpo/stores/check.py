"""`hpo check`: the two stores must agree. Walks a study's Optuna trials and its MLflow runs and
reports every disagreement; each finding knows its repair, if there is a safe one. A repair
closes a run with the status its trial's state maps to or corrects a count: it never deletes a
result (and cannot re-link a finished trial: Optuna refuses updates to finished trials). Every
search start applies the cheap part (run statuses).

Findings: a run whose status contradicts its trial's state (RUNNING after the trial ended, or
FINISHED for a trial that failed: kill -9 between the MLflow end and the Optuna tell); a
finished trial without a run id; a trial run that no trial points to; a COMPLETE trial whose
checkpoint files are missing; a parent run left RUNNING with no trial running; a lockbox count
on the parent run that differs from the study's records; a RUNNING trial whose process on this
host is gone (a kill, a full disk); a logged model an export left PENDING."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from hpo.stores import link
from hpo.stores.mlflow import MlflowStore, RunRecord
from hpo.stores.optuna import StudyHandle, TrialRow
from hpo.stores.owner import host_id, process_alive

_SIDE_ROLES = (link.ROLE_STUDY, link.ROLE_BASELINE, link.ROLE_REPRODUCE)  # runs that are no trial's


@dataclass(frozen=True)
class Finding:
    study: str
    what: str  # the disagreement, one line
    repair: str  # what --repair does, "" when nothing safe can be done
    fix: Callable[[], None] | None = None


def _close(store: MlflowStore, run_id: str, *, tags: dict[str, object], status: link.RunStatus) -> None:
    if tags:
        store.set_tags(run_id, tags)
    store.end_run(run_id, status=status)


def expected_status(row: TrialRow) -> tuple[link.RunStatus, ...]:
    """The MLflow statuses a finished trial's run may have (link.OUTCOMES)."""
    return link.run_statuses(state=row.state, outcome=row.attrs.get(link.OUTCOME))


def _runs_of(
    row: TrialRow, runs: dict[str, RunRecord], unlinked: dict[int, list[RunRecord]]
) -> list[RunRecord]:
    """The trial's run; for a failed trial with no run id (its process died between creating the
    run and recording its id), the trial runs that name it by number."""
    linked = runs.get(link.run_id(row))
    if linked is not None:
        return [linked]
    return unlinked.get(row.number, []) if row.state == link.FAIL else []


def status_findings(*, study: StudyHandle, store: MlflowStore, runs: dict[str, RunRecord]) -> list[Finding]:
    """Runs whose status contradicts their finished trial's state: the cheap part."""
    unlinked: dict[int, list[RunRecord]] = {}
    for r in runs.values():
        if r.tags.get(link.ROLE) == link.ROLE_TRIAL and r.tags.get(link.TRIAL_NUMBER, "").isdigit():
            unlinked.setdefault(int(r.tags[link.TRIAL_NUMBER]), []).append(r)
    found = []
    pairs = [(r, run) for r in study.rows(states=link.FINISHED_STATES) for run in _runs_of(r, runs, unlinked)]
    for row, run in pairs:
        allowed = expected_status(row)
        if run.status in allowed:
            continue

        tags: dict[str, object] = {link.STATE: row.state}
        if link.FAIL_REASON in row.attrs:
            tags[link.FAIL_REASON] = row.attrs[link.FAIL_REASON]
        close = partial(_close, store, run.run_id, tags=tags, status=allowed[0])
        what = f"trial {row.number} is {row.state} but its run {run.run_id} is {run.status}"
        found.append(Finding(study.name, what, f"close the run as {allowed[0]}", close))
    return found


def _link_findings(*, study: StudyHandle, runs: dict[str, RunRecord]) -> list[Finding]:
    rows = study.rows()
    linked = {link.run_id(r) for r in rows}
    unlinked_trials = {
        r.number: r for r in rows if not link.run_id(r) and r.state in (link.COMPLETE, link.PRUNED)
    }
    found = []
    for run in runs.values():
        if run.tags.get(link.ROLE) in _SIDE_ROLES or run.run_id in linked:
            continue
        number = int(run.tags.get(link.TRIAL_NUMBER, -1))
        if number in unlinked_trials:
            unlinked_trials.pop(number)  # Optuna cannot update a finished trial: no re-linking
            what = f"trial {number} has no run id, but run {run.run_id} names it as its trial"
            found.append(Finding(study.name, what, ""))
        else:
            found.append(Finding(study.name, f"run {run.run_id} ({run.name}) belongs to no trial", ""))
    found += [
        Finding(study.name, f"trial {n} ({r.state}) has no MLflow run", "")
        for n, r in unlinked_trials.items()
    ]
    return found


def _checkpoint_findings(
    *, study: StudyHandle, store: MlflowStore, runs: dict[str, RunRecord]
) -> list[Finding]:
    found = []
    for row in study.rows(states=(link.COMPLETE,)):
        run_id = link.run_id(row)
        if run_id not in runs:
            continue
        files = {a.rsplit("/", 1)[-1] for a in store.artifact_paths(run_id, link.CHECKPOINT_PATH)}
        if not {"model.pt", "config.json"} <= files:
            what = f"trial {row.number} is COMPLETE but its checkpoint is missing from run {run_id}"
            found.append(Finding(study.name, what, ""))
    return found


def _study_findings(*, study: StudyHandle, store: MlflowStore, runs: dict[str, RunRecord]) -> list[Finding]:
    found = []
    parent = runs.get(link.parent_run_id(study))
    if parent is not None and parent.status == link.RUN_RUNNING and not study.counts().running:
        finish = partial(_close, store, parent.run_id, tags={}, status="FINISHED")
        found.append(
            Finding(study.name, f"the parent run {parent.run_id} is RUNNING, no trial is", "close it", finish)
        )
    looks = len(link.lockbox_records(study))
    if parent is not None and looks and parent.tags.get(link.TEST_EVALUATIONS) != str(looks):
        tag = parent.tags.get(link.TEST_EVALUATIONS, "none")

        count = partial(store.set_tags, parent.run_id, {link.TEST_EVALUATIONS: looks})
        what = f"the study records {looks} test look(s), its parent run says {tag}"
        found.append(Finding(study.name, what, "correct the run's count", count))
    return found


UNOWNED_S = 600  # a RUNNING trial that never recorded its owner is abandoned after this long


def orphan_reason(row: TrialRow) -> str:
    """Why a RUNNING trial is known to be abandoned ("" when its owner may be alive): its process
    on this host is gone (pid and start time), or it never recorded an owner and is old. Another
    host's trials are judged by their heartbeat instead (`StudyHandle.fail_stale`)."""
    pid, host = row.attrs.get(link.OWNER_PID), row.attrs.get(link.OWNER_HOST)
    if (
        host == host_id()
        and isinstance(pid, int)
        and not process_alive(pid, row.attrs.get(link.OWNER_TOKEN, ""))
    ):
        return f"process {pid} on {host} died during the trial"
    if pid is None and row.started and _age_seconds(row.started) > UNOWNED_S:
        return "its process died before it started training"
    return ""


def _age_seconds(started: str) -> float:
    return (datetime.datetime.now() - datetime.datetime.fromisoformat(started)).total_seconds()


def fail_orphan(study: StudyHandle, row: TrialRow, *, reason: str) -> None:
    """Record an abandoned trial's end (interrupted: its configuration is queued to run again)."""
    study.fail_running(row.number, attrs=link.TrialEnd(outcome="interrupted", reason=reason).trial_attrs())
    if link.OWNER_PID in row.attrs:  # it had drawn its parameters, or could have
        study.requeue(row.number, attrs={link.RETRY_OF: row.number}, carry=link.RETRY_CARRIES)


def _orphan_findings(*, study: StudyHandle, store: MlflowStore) -> list[Finding]:
    found = []
    for row in study.rows(states=(link.RUNNING,)):
        reason = orphan_reason(row)
        if reason:
            fix = partial(_repair_orphan, study, store, row, reason)
            what = f"trial {row.number} is RUNNING but {reason}"
            found.append(Finding(study.name, what, "fail it, queue it again, close its run", fix))
    return found


def _repair_orphan(study: StudyHandle, store: MlflowStore, row: TrialRow, reason: str) -> None:
    fail_orphan(study, row, reason=reason)
    reconcile_statuses(study=study, store=store)


PENDING_S = 600  # an export takes seconds: a logged model PENDING for longer was abandoned


def _model_findings(*, study: StudyHandle, store: MlflowStore, experiment: str) -> list[Finding]:
    """Logged models an export left PENDING (its process was killed while writing the model)."""
    return [
        Finding(
            study.name,
            f"logged model {model_id} is PENDING: an export that never finished",
            "mark it FAILED",
            partial(store.fail_model, model_id),
        )
        for model_id in store.pending_models(experiment, older_than_s=PENDING_S)
    ]


def check_study(*, study: StudyHandle, store: MlflowStore) -> list[Finding]:
    """Every disagreement between a study and its MLflow experiment."""
    experiment = store.find_experiment(study.name)
    runs = {r.run_id: r for r in store.runs(experiment)} if experiment else {}
    return [
        *_orphan_findings(study=study, store=store),
        *status_findings(study=study, store=store, runs=runs),
        *_link_findings(study=study, runs=runs),
        *_checkpoint_findings(study=study, store=store, runs=runs),
        *_study_findings(study=study, store=store, runs=runs),
        *(_model_findings(study=study, store=store, experiment=experiment) if experiment else []),
    ]


def reconcile_statuses(*, study: StudyHandle, store: MlflowStore) -> int:
    """The cheap part, applied at every search start: close runs whose status contradicts their
    trial. Returns how many were repaired."""
    experiment = store.find_experiment(study.name)
    if experiment is None:
        return 0
    findings = status_findings(study=study, store=store, runs={r.run_id: r for r in store.runs(experiment)})
    for finding in findings:
        assert finding.fix is not None
        finding.fix()
    return len(findings)
