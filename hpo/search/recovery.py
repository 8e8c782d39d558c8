"""Nothing lost, no zombies: trials of dead processes are failed (and their MLflow runs closed,
with every other run whose status contradicts its trial: `check.reconcile_statuses`) before a
search starts and before every claim. Which process owns a trial: `hpo.stores.owner`."""

from __future__ import annotations

import datetime

from hpo.stores import link
from hpo.stores.check import reconcile_statuses
from hpo.stores.link import TrialEnd
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna import StudyHandle
from hpo.stores.owner import host_id, process_alive

UNOWNED_S = 600  # a RUNNING trial that never recorded its owner is abandoned after this long


def _age_seconds(started: str) -> float:
    if not started:
        return 0.0
    return (datetime.datetime.now() - datetime.datetime.fromisoformat(started)).total_seconds()


def recover_orphans(*, study: StudyHandle, store: MlflowStore) -> int:
    """Fail trials left RUNNING by dead processes; close any of their MLflow runs still RUNNING."""
    recovered = 0
    for row in study.rows(states=("RUNNING",)):
        pid, host = row.attrs.get(link.OWNER_PID), row.attrs.get(link.OWNER_HOST)
        token = row.attrs.get(link.OWNER_TOKEN, "")
        if host == host_id() and isinstance(pid, int) and not process_alive(pid, token):
            end = TrialEnd(outcome="interrupted", reason=f"process {pid} on {host} died during the trial")
            study.fail_running(row.number, attrs=end.trial_attrs())
            study.requeue(row.number, attrs={link.RETRY_OF: row.number}, carry=link.RETRY_CARRIES)
            recovered += 1
        elif pid is None and _age_seconds(row.started) > UNOWNED_S:
            end = TrialEnd(outcome="interrupted", reason="its process died before it started training")
            study.fail_running(row.number, attrs=end.trial_attrs())
            recovered += 1
    recovered += len(_fail_stale(study))
    reconcile_statuses(study=study, store=store)  # their runs, and any other run left contradicting
    return recovered


def recover_stale(*, study: StudyHandle, store: MlflowStore) -> int:
    """Before every claim: fail (and re-queue) trials of any host whose heartbeat stopped, and
    close their MLflow runs, so a dead host's trials never hold the target."""
    failed = _fail_stale(study)
    if failed:
        reconcile_statuses(study=study, store=store)
    return len(failed)


def _fail_stale(study: StudyHandle) -> list[int]:
    def reason(attrs: dict[str, object]) -> str:
        host = attrs.get(link.OWNER_HOST, "its host")
        return f"no heartbeat from {host} for over {study.grace_period} s: its process died"

    return study.fail_stale(
        reason=reason, reason_key=link.FAIL_REASON, retry_key=link.RETRY_OF, carry=link.RETRY_CARRIES
    )
