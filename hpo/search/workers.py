"""`hpo search --jobs N`: N worker processes run trials of one search session on the same device
and store; and what any kind of worker shares (`hpo.search.ray_workers` places them with Ray).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from hpo.errors import HpoError, StudyError
from hpo.search.context import SearchObserver
from hpo.search.loop import run_trials
from hpo.search.session import Session, StopReason, search_study


class EventSink(Protocol):
    """Where a worker's events go: a multiprocessing queue, or Ray's."""

    def put(self, item: Any) -> None: ...


class EventSource(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...  # raises queue.Empty


class QueueObserver:
    """Forwards a worker's events to the process showing the display."""

    def __init__(self, events: EventSink, worker: int) -> None:
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


@dataclass(frozen=True)
class WorkerReport:
    """How one worker's trial loop ended: trials it ran, why it stopped, its error line if any."""

    ran: int
    stopped: StopReason
    error: str | None = None


def worker_devices(*, device: str, devices: tuple[str, ...]) -> list[str]:
    """The devices `--jobs` workers take round-robin: `--devices`, else every visible GPU when
    `--device` is auto or cuda and there are several, else `--device` for all."""
    if devices:
        return list(devices)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device in ("auto", "cuda") and count > 1:
        return [f"cuda:{i}" for i in range(count)]
    return [device]


def work(
    *, worker: int, session: Session, observer: SearchObserver, device_name: str, threads: int | None = None
) -> WorkerReport:
    """A worker's body, in its own process: configure it like the CLI does, run the trial loop.
    `threads`: the CPU threads it was given (Ray's `num_cpus`); None: its share of the free cores."""
    from hpo.stores.runtime import configure

    configure()
    try:
        ran, stopped = run_trials(
            session=session, observer=observer, device_name=device_name, threads=threads
        )
        return WorkerReport(ran=ran, stopped=stopped)
    except KeyboardInterrupt:
        return WorkerReport(ran=0, stopped="interrupted")
    except HpoError as exc:
        return WorkerReport(ran=0, stopped="error", error=str(exc))
    except Exception as exc:
        return WorkerReport(ran=0, stopped="error", error=f"worker {worker}: {type(exc).__name__}: {exc}")


def _worker(worker: int, session: Session, events: Any) -> None:
    """A `--jobs` worker process's root."""
    # Share the CPU cores instead of oversubscribing them (each process would take them all).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // (session.cfg.jobs or 1)))
    devices = worker_devices(device=session.cfg.device, devices=session.cfg.devices)
    device_name = devices[worker % len(devices)]
    observer = QueueObserver(events, worker)
    events.put(("done", work(worker=worker, session=session, observer=observer, device_name=device_name)))


def relay(
    events: EventSource, observer: SearchObserver, *, pending: Callable[[], bool], reports: list[WorkerReport]
) -> None:
    """Forward workers' events to the display while `pending()` (some worker still runs), then
    drain the rest; the reports that come as events ("done") are appended to `reports`."""
    started = False
    while True:
        running = pending()  # asked before the read: an event put before a worker ended is read
        try:
            kind, kw = events.get(timeout=0.5)
        except queue.Empty:
            if not running:
                return
            continue
        if kind == "done":
            reports.append(kw)
        elif kind == "started":
            if not started:
                observer.started(**kw)
            started = True
        else:
            getattr(observer, kind)(**kw)


def run_workers(*, session: Session, observer: SearchObserver) -> tuple[int, StopReason]:
    """Run the session's trials in `session.cfg.jobs` processes; returns (trials run, why stopped)."""
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    events = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(i, session, events), daemon=False)
        for i in range(session.cfg.jobs or 1)
    ]
    for p in procs:
        p.start()

    def forward_sigterm(signum: int, frame: object) -> None:
        for p in procs:
            if p.pid:
                os.kill(p.pid, signal.SIGTERM)

    def pending() -> bool:
        return any(p.is_alive() for p in procs)

    forward = signal.signal(signal.SIGTERM, forward_sigterm)
    reports: list[WorkerReport] = []
    interrupted = False
    try:
        relay(events, observer, pending=pending, reports=reports)
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them record their trials
        interrupted = True
        relay(events, observer, pending=pending, reports=reports)
    finally:
        signal.signal(signal.SIGTERM, forward)
        for p in procs:
            p.join(timeout=60)
    died = [WorkerReport(ran=0, stopped="error")] * (len(procs) - len(reports))  # no report: killed
    interrupt = [WorkerReport(ran=0, stopped="interrupted")] if interrupted else []
    return conclude(session, [*reports, *died, *interrupt])


def conclude(session: Session, reports: list[WorkerReport]) -> tuple[int, StopReason]:
    """The call's (trials run, why stopped) from its workers' reports; a worker's error raised.
    A report of "error" without a line is a worker that died: the others ran its trial again."""
    errors = [r.error for r in reports if r.error]
    if errors:
        raise StudyError(errors[0])
    reasons = {r.stopped for r in reports}
    if "error" in reasons:
        if not _target_met(session):
            raise StudyError("a worker process died unexpectedly (out of memory?) before the target was met")
        reasons.add("target")  # a call whose target is met ends as such
    order: tuple[StopReason, ...] = ("interrupted", "budget", "timeout", "target")  # the first present wins
    return sum(r.ran for r in reports), next((r for r in order if r in reasons), "already-done")


def _target_met(session: Session) -> bool:
    return search_study(session.workspace(), session.cfg).counts().finished >= session.cfg.trials
