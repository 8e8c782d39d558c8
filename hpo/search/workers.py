"""`hpo search --jobs N`: N worker processes run trials of one search session on the same device
and store.

The session is opened (and later closed) by the parent process in `hpo.search.session`, so workers
never race to create tables, the study or its MLflow parent run, and never end the parent run:
each worker only runs the trial loop and relays its events to the parent's one display.
Ctrl-C reaches every worker through the terminal's process group; SIGTERM to the parent is
forwarded."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
from typing import Any

import torch

from hpo.errors import HpoError, StudyError
from hpo.search.context import SearchObserver
from hpo.search.loop import run_trials
from hpo.search.session import Session, StopReason, search_study


class _QueueObserver:
    """Forwards a worker's events to the parent."""

    def __init__(self, events: Any, worker: int) -> None:
        self.events, self.worker = events, worker

    def started(self, **kw: Any) -> None:
        self.events.put(("started", kw))

    def trial_started(self, **kw: Any) -> None:
        self.events.put(("trial_started", kw))

    def progress(self, **kw: Any) -> None:
        self.events.put(("progress", kw))

    def epoch(self, **kw: Any) -> None:
        self.events.put(("epoch", kw))

    def trial_finished(self, **kw: Any) -> None:
        self.events.put(("trial_finished", kw))


def worker_devices(*, device: str, devices: tuple[str, ...]) -> list[str]:
    """The devices `--jobs` workers take round-robin: `--devices`, else every visible GPU when
    `--device` is auto or cuda and there are several, else `--device` for all."""
    if devices:
        return list(devices)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device in ("auto", "cuda") and count > 1:
        return [f"cuda:{i}" for i in range(count)]
    return [device]


def _worker(worker: int, session: Session, events: Any) -> None:
    """A worker process's root: configure it like the CLI does, then run the trial loop."""
    from hpo.stores.runtime import configure

    configure()
    # Share the CPU cores instead of oversubscribing them (each process would take them all).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // session.cfg.jobs))
    devices = worker_devices(device=session.cfg.device, devices=session.cfg.devices)
    observer = _QueueObserver(events, worker)
    try:
        ran, stopped = run_trials(
            session=session, observer=observer, device_name=devices[worker % len(devices)]
        )
        events.put(("done", {"ran": ran, "stopped": stopped}))
    except KeyboardInterrupt:
        events.put(("done", {"ran": 0, "stopped": "interrupted"}))
    except HpoError as exc:
        events.put(("error", {"message": str(exc)}))
    except BaseException as exc:
        events.put(("error", {"message": f"worker {worker}: {type(exc).__name__}: {exc}"}))


def _relay(procs: list[Any], events: Any, observer: SearchObserver) -> tuple[int, set[StopReason], list[str]]:
    """Forward events until every worker has reported; returns (trials run, stop reasons, errors)."""
    reasons: set[StopReason] = set()
    ran, errors, started, pending = 0, [], False, len(procs)
    while pending:
        try:
            kind, kw = events.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):  # a worker died without reporting
                reasons.add("error")  # unless the others met the target (`run_workers`)
                break
            continue
        if kind in ("done", "error"):
            pending -= 1
            ran += kw.get("ran", 0)
            reasons.add(kw.get("stopped", "error"))
            errors += [kw["message"]] if kind == "error" else []
        elif kind == "started":
            if not started:
                observer.started(**kw)
            started = True
        else:
            getattr(observer, kind)(**kw)
    return ran, reasons, errors


def run_workers(*, session: Session, observer: SearchObserver) -> tuple[int, StopReason]:
    """Run the session's trials in `session.cfg.jobs` processes; returns (trials run, why stopped)."""
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    events = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(i, session, events), daemon=False) for i in range(session.cfg.jobs)
    ]
    for p in procs:
        p.start()

    def forward_sigterm(signum: int, frame: object) -> None:
        for p in procs:
            if p.pid:
                os.kill(p.pid, signal.SIGTERM)

    forward = signal.signal(signal.SIGTERM, forward_sigterm)
    try:
        ran, reasons, errors = _relay(procs, events, observer)
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them record their trials
        ran, reasons, errors = _relay(procs, events, observer)
        reasons.add("interrupted")
    finally:
        signal.signal(signal.SIGTERM, forward)
        for p in procs:
            p.join(timeout=60)
    if errors:
        raise StudyError(errors[0])
    if "error" in reasons:  # a worker died without reporting; the others ran its trial again
        if not _target_met(session):
            raise StudyError("a worker process died unexpectedly (out of memory?) before the target was met")
        reasons.add("target")  # a call whose target is met ends as such
    order: tuple[StopReason, ...] = ("interrupted", "budget", "timeout", "target")  # the first present wins
    return ran, next((r for r in order if r in reasons), "already-done")


def _target_met(session: Session) -> bool:
    return search_study(session.workspace(), session.cfg).counts().finished >= session.cfg.trials
