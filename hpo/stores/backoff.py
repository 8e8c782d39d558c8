"""Retrying a call that failed for a passing reason (a database server restarting, a lost
connection): one loop, so every store waits the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
FIRST_DELAY_S = 0.2  # doubled after each failure...
MAX_DELAY_S = 2.0  # ...up to this: a restart of a few seconds costs at most ~2 s more than it lasts


def with_backoff(attempt: Callable[[], T], *, retry_on: Callable[[Exception], bool], wait_s: float) -> T:
    """`attempt()`'s result; an exception that `retry_on` accepts is retried with a doubling delay
    until `wait_s` seconds have passed, then raised like any other."""
    delay, deadline = FIRST_DELAY_S, time.monotonic() + wait_s
    while True:
        try:
            return attempt()
        except Exception as exc:
            if not retry_on(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, MAX_DELAY_S)
