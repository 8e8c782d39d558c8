"""The lockbox's record of looks at a test split: every evaluation a study remembers (time, trial,
result), claimed before the split is read and atomic for every process sharing the store, and the
refusals of a second look at a split (by this study or another on the same split) and of a look
at an unfinished study. Torch-free: `results.lockbox` evaluates."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from hpo.errors import LockboxError
from hpo.stores import link
from hpo.stores.optuna import StudyHandle
from hpo.stores.owner import host_id, process_alive, process_token
from hpo.stores.spec import read_spec
from hpo.stores.workspace import Workspace


def refuse_second_use(handle: StudyHandle, looks: list[tuple[str, dict[str, Any]]]) -> None:
    """Refuse a look when the split's test set was looked at: by this study or another one."""
    by, last = looks[-1]
    whose = (
        f"study {handle.name!r}" if by == handle.name else f"study {handle.name!r} (the same split as {by!r})"
    )
    if last.get("pending"):
        raise LockboxError(
            f"the test set of {whose} is being evaluated by another process (pid {last.get('pid')} "
            f"on {last.get('host')}, since {last['time']}, trial {last['trial']}): wait for its result "
            "in `hpo best`"
        )
    raise LockboxError(
        f"the test set of {whose} was already used on {last['time']} (study {by!r}, trial {last['trial']}: "
        f"test accuracy {100 * last['accuracy']:.2f}%); evaluating again would let the test set "
        f"choose the model: pass --force only if you accept that"
    )


def refuse_unfinished(handle: StudyHandle) -> None:
    """The best trial may still change while trials run, or below the target of a search that
    did not end by its own time budget (--timeout, --budget)."""
    counts, target = handle.counts(), int(handle.attr(link.TARGET, 0) or 0)
    timed_out = handle.attr(link.LAST_STOP, "") in ("timeout", "budget")
    if counts.running or (counts.finished < target and not timed_out):
        raise LockboxError(
            f"study {handle.name!r} is not done ({counts.running} trial(s) RUNNING, {counts.finished}/"
            f"{target or counts.finished} finished): its best trial may still change; evaluate when the "
            "search is done, or pass --force"
        )


def live(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without the claims of processes of this host that died before recording a result:
    such a process showed nothing, so its look decided nothing."""
    return [
        r
        for r in records
        if not (
            r.get("pending")
            and r.get("host") == host_id()
            and not process_alive(r["pid"], r.get("token", ""))
        )
    ]


@contextlib.contextmanager
def claimed_look(
    *, ws: Workspace, handle: StudyHandle, force: bool, trial: int, run_id: str, fields: dict[str, Any]
) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """The lockbox's check-and-record, atomic for every process sharing the store (`StudyStore.lock`:
    a file lock on SQLite, an advisory lock on PostgreSQL). The look is claimed, as a pending
    record, before the test split is read, so a second process is refused while the first
    evaluates. Yields (earlier records, result to fill in); the result replaces the claim, and a
    failed evaluation withdraws it (nothing recorded)."""
    with ws.studies.lock():
        earlier = live(link.lockbox_records(handle))
        looks = split_looks(ws, handle)
        if looks and not force:
            refuse_second_use(handle, looks)
        pid = os.getpid()
        claim = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "trial": trial, "run_id": run_id, **fields}
        claim |= {
            "forced": bool(looks),
            "pending": True,
            "host": host_id(),
            "pid": pid,
            "token": process_token(pid),
        }
        handle.set_attr(link.TEST_EVALUATIONS, [*earlier, claim])
    result: dict[str, Any] = {}
    try:
        yield earlier, result
    finally:
        with ws.studies.lock():
            records = [r for r in link.lockbox_records(handle) if r != claim]
            final = {k: v for k, v in claim.items() if k not in ("pending", "token")}
            handle.set_attr(link.TEST_EVALUATIONS, [*records, {**final, **result}] if result else records)


def split_looks(ws: Workspace, handle: StudyHandle) -> list[tuple[str, dict[str, Any]]]:
    """Live looks at this study's test split by any study of the store, this one's last."""
    spec = read_spec(handle)
    fingerprint = spec.fingerprint if spec else ""
    others = [(n, r) for n, r in ws.split_looks(fingerprint) if n != handle.name] if fingerprint else []
    return [(n, r) for n, r in others if live([r])] + [
        (handle.name, r) for r in live(link.lockbox_records(handle))
    ]
