"""Nothing lost, no zombies: trials of dead processes are failed (and their MLflow runs closed,
with every other run whose status contradicts its trial: `check.reconcile_statuses`) before a
search starts. Which process owns a trial: host, pid and the pid's start time."""

from __future__ import annotations

import datetime
import os
import socket
import zlib

from hpo.stores import link
from hpo.stores.check import reconcile_statuses
from hpo.stores.mlflow import MlflowStore
from hpo.stores.optuna import StudyHandle


def host_id() -> str:
    """This machine's name in the stores: HPO_HOST_ID (e.g. one per container sharing a
    hostname), else the hostname. Recorded on every trial it runs and mixed into sampler seeds."""
    return os.environ.get("HPO_HOST_ID", "").strip() or socket.gethostname()


UNOWNED_S = 600  # a RUNNING trial that never recorded its owner is abandoned after this long


def _age_seconds(started: str) -> float:
    if not started:
        return 0.0
    return (datetime.datetime.now() - datetime.datetime.fromisoformat(started)).total_seconds()


def host_seed(seed: int) -> int:
    """`seed` mixed with this host's identity: the sampler seed of its claims (each claim adds the
    trial count, so processes of one host differ too)."""
    return (seed + 7919 * (zlib.crc32(host_id().encode()) % 65521)) % 2**31


def process_token(pid: int) -> str:
    """Start time of `pid` (Linux clock ticks since boot) to tell a live process from a reused
    pid; "" where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, token: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not token or process_token(pid) in ("", token)


def recover_orphans(*, study: StudyHandle, store: MlflowStore) -> int:
    """Fail trials left RUNNING by dead processes; close any of their MLflow runs still RUNNING."""
    recovered = 0
    for row in study.rows(states=("RUNNING",)):
        pid, host = row.attrs.get(link.OWNER_PID), row.attrs.get(link.OWNER_HOST)
        token = row.attrs.get(link.OWNER_TOKEN, "")
        if host == host_id() and isinstance(pid, int) and not process_alive(pid, token):
            study.fail_running(
                row.number, attrs={link.FAIL_REASON: f"process {pid} on {host} died during the trial"}
            )
            recovered += 1
        elif pid is None and _age_seconds(row.started) > UNOWNED_S:
            study.fail_running(
                row.number, attrs={link.FAIL_REASON: "its process died before it started training"}
            )
            recovered += 1
    recovered += len(study.fail_stale(reason_key=link.FAIL_REASON, retry_key=link.RETRY_OF))
    reconcile_statuses(study=study, store=store)  # their runs, and any other run left contradicting
    return recovered


def recover_stale(*, study: StudyHandle, store: MlflowStore) -> int:
    """Before every claim: fail (and re-queue) trials of any host whose heartbeat stopped, and
    close their MLflow runs, so a dead host's trials never hold the target."""
    failed = study.fail_stale(reason_key=link.FAIL_REASON, retry_key=link.RETRY_OF)
    if failed:
        reconcile_statuses(study=study, store=store)
    return len(failed)
