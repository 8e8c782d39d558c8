"""Signals: SIGTERM behaves like Ctrl-C, and a store write is never cut in half.

A Ctrl-C or SIGTERM arriving while SQLite is writing (MLflow's or Optuna's store) would raise
KeyboardInterrupt inside SQLAlchemy and can leave the file locked by this very process, so the
end-of-trial record then waits out the busy timeout. Store calls therefore run with the signals
deferred: they are delivered, to the handler in force, as soon as the call returns."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # only it may set handlers


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """SIGINT/SIGTERM arriving inside the block are delivered when it ends (once each)."""
    if not _main_thread():
        yield
        return
    caught: list[int] = []

    def record(signum: int, frame: Any) -> None:
        caught.append(signum)

    old = {s: signal.signal(s, record) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while recording a trial's end or the study's, so a second Ctrl-C
    cannot leave a half-written record or cut the summary short."""
    if not _main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A scheduler's SIGTERM behaves like Ctrl-C."""
    if not _main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
