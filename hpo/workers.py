"""`hpo search --jobs N`: N worker processes run trials of one study on the same device and store.

The parent prepares the stores and the study once (so workers never race to create tables or
the study's MLflow parent run), starts the workers, and relays their events to one display.
Ctrl-C reaches every worker through the terminal's process group; SIGTERM to the parent is
forwarded. The outcome is read back from the study when all workers have stopped."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
from dataclasses import replace
from typing import Any

import torch

from hpo.config import DataConfig, SearchConfig
from hpo.data import load_train_val
from hpo.errors import HpoError, StudyError
from hpo.recovery import recover_orphans
from hpo.search import SearchObserver, SearchOutcome, outcome_of, prepare_study, run_search
from hpo.space import Space
from hpo.study import open_storage
from hpo.train import resolve_device


class _QueueObserver:
    """Forwards a worker's events to the parent."""

    def __init__(self, events: Any, worker: int) -> None:
        self.events, self.worker = events, worker

    def started(self, **kw: Any) -> None:
        self.events.put(("started", kw))

    def trial_started(self, **kw: Any) -> None:
        self.events.put(("trial_started", kw))

    def epoch(self, **kw: Any) -> None:
        self.events.put(("epoch", kw))

    def trial_finished(self, **kw: Any) -> None:
        self.events.put(("trial_finished", kw))


def _worker(worker: int, cfg: SearchConfig, data_cfg: DataConfig, space: Space, events: Any) -> None:
    # Share the CPU cores instead of oversubscribing them (each process would take them all).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.jobs))
    try:
        out = run_search(
            cfg=cfg, data_cfg=data_cfg, space=space, observer=_QueueObserver(events, worker), worker=worker
        )
        events.put(("done", {"ran": out.ran, "stopped": out.stopped}))
    except KeyboardInterrupt:
        events.put(("done", {"ran": 0, "stopped": "interrupted"}))
    except HpoError as exc:
        events.put(("error", {"message": str(exc)}))
    except BaseException as exc:
        events.put(("error", {"message": f"worker {worker}: {type(exc).__name__}: {exc}"}))


def _relay(procs: list[Any], events: Any, observer: SearchObserver) -> tuple[int, set[str], list[str]]:
    """Forward events until every worker has reported; returns (trials run, stop reasons, errors)."""
    ran, reasons, errors, started, pending = 0, set(), [], False, len(procs)
    while pending:
        try:
            kind, kw = events.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):  # a worker died without reporting
                errors.append("a worker process died unexpectedly (out of memory?)")
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


def run_parallel_search(
    *, cfg: SearchConfig, data_cfg: DataConfig, space: Space, observer: SearchObserver
) -> SearchOutcome:
    """Like `run_search`, with `cfg.jobs` processes."""
    open_storage(cfg.storage)  # fail fast on a bad URL, before loading data
    device = resolve_device(cfg.device)
    fingerprint = load_train_val(data_cfg, device=torch.device("cpu")).fingerprint
    prepared = prepare_study(cfg=cfg, data_cfg=data_cfg, space=space, fingerprint=fingerprint, device=device)
    study = prepared.study
    recovered = recover_orphans(study=study, tracker=prepared.tracker)
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    events = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(i, replace(cfg), data_cfg, space, events), daemon=False)
        for i in range(cfg.jobs)
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
    stopped = next((r for r in ("interrupted", "timeout", "target") if r in reasons), "already-done")
    return outcome_of(study=study, target=cfg.trials, ran=ran, stopped=stopped, recovered=recovered)
