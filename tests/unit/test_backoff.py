"""The one retry loop every store uses: passing failures are retried until the deadline, others
are raised at once."""

from __future__ import annotations

import time

import pytest

from hpo.stores.backoff import with_backoff


class Flaky:
    def __init__(self, failures: int, exc: Exception) -> None:
        self.failures, self.exc, self.calls = failures, exc, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return "ok"


def passing(exc: Exception) -> bool:
    return isinstance(exc, ConnectionError)


def test_passing_failures_are_retried_until_the_call_succeeds() -> None:
    call = Flaky(2, ConnectionError("server restarting"))
    start = time.monotonic()
    assert with_backoff(call, retry_on=passing, wait_s=10) == "ok"
    assert call.calls == 3
    assert 0.5 <= time.monotonic() - start < 2  # waited 0.2 + 0.4 s


def test_other_failures_are_raised_at_once() -> None:
    call = Flaky(1, ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        with_backoff(call, retry_on=passing, wait_s=10)
    assert call.calls == 1


def test_a_failure_past_the_deadline_is_raised() -> None:
    call = Flaky(100, ConnectionError("still down"))
    with pytest.raises(ConnectionError):
        with_backoff(call, retry_on=passing, wait_s=0.5)
    assert 2 <= call.calls <= 4  # 0.2 + 0.4 s of waiting, then past the deadline


def test_no_wait_means_one_try() -> None:
    call = Flaky(1, ConnectionError("refused"))
    with pytest.raises(ConnectionError):
        with_backoff(call, retry_on=passing, wait_s=0)
    assert call.calls == 1
