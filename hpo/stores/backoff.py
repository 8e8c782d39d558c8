"""Retrying a call that failed for a passing reason (a database server restarting, a lost
connection, a store locked by another writer): one loop, so every store waits the same way."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
FIRST_DELAY_S = 0.2  # doubled after each failure...
MAX_DELAY_S = 2.0  # ...up to this: a restart of a few seconds costs at most ~2 s more than it lasts


def with_backoff(
    attempt: Callable[[], T],
    *,
    retry_on: Callable[[Exception], bool],
    wait_s: float | None = None,
    attempts: int | None = None,
    first_delay_s: float = FIRST_DELAY_S,
) -> T:
    """`attempt()`'s result; an exception that `retry_on` accepts is retried with a doubling delay
    until `wait_s` seconds have passed or `attempts` calls were made (whichever comes first), then
    raised like any other. A store whose every call already waits (SQLite's busy timeout) counts
    attempts; a server that may be restarting counts seconds."""
    delay, tries = first_delay_s, 0
    deadline = time.monotonic() + wait_s if wait_s is not None else None
    while True:
        try:
            return attempt()
        except Exception as exc:
            tries += 1
            out_of_time = deadline is not None and time.monotonic() > deadline
            if not retry_on(exc) or out_of_time or (attempts is not None and tries >= attempts):
                raise
        time.sleep(delay)
        delay = min(2 * delay, MAX_DELAY_S)
