"""Nothing lost, no zombies: trials of dead processes are failed (and their MLflow runs closed,
with every other run whose status contradicts its trial: `check.reconcile_statuses`) before a
search starts and before every claim. Which process owns a trial: `hpo.stores.owner`."""

from __future__ import annotations

from hpo.stores import link
from hpo.stores.check import fail_orphan, orphan_reason, reconcile_statuses
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna import StudyHandle


def recover_orphans(*, study: StudyHandle, store: MlflowStore) -> int:
    """When a search starts: fail (and queue again) the trials of dead processes, and close every
    MLflow run whose status contradicts its trial."""
    failed = _fail_dead(study)
    reconcile_statuses(study=study, store=store)  # their runs, and any other run left contradicting
    return failed


def recover_stale(*, study: StudyHandle, store: MlflowStore) -> int:
    """Before every claim: the same for the trials of dead processes, so they never hold the
    target: a `--jobs` worker that died is known dead at once (its pid and start time), a
    process of another host once its heartbeat is older than the grace period."""
    failed = _fail_dead(study)
    if failed:
        reconcile_statuses(study=study, store=store)
    return failed


def _fail_dead(study: StudyHandle) -> int:
    """Fail the RUNNING trials whose owner is dead: of this host by its process, of any host by
    its heartbeat. Returns how many."""
    failed = 0
    for row in study.rows(states=(link.RUNNING,)):
        reason = orphan_reason(row)
        if reason:
            fail_orphan(study, row, reason=reason)
            failed += 1
    return failed + len(_fail_stale(study))


def _fail_stale(study: StudyHandle) -> list[int]:
    def reason(attrs: dict[str, object]) -> str:
        host = attrs.get(link.OWNER_HOST, "its host")
        return f"no heartbeat from {host} for over {study.grace_period} s: its process died"

    return study.fail_stale(
        reason=reason, reason_key=link.FAIL_REASON, retry_key=link.RETRY_OF, carry=link.RETRY_CARRIES
    )
