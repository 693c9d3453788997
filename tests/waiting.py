"""Waiting for a condition with a deadline: the only way tests synchronise with processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


FIRST_PAUSE, LAST_PAUSE = 0.02, 0.2
"""Unless a caller fixes the interval, the pause between tries grows from the first to the last:
a condition met at once is seen at once, and one met after seconds costs a few tries a second,
not fifty (a try may start a process or make a call)."""


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    message: str = "",
    interval: float | None = None,
) -> T:
    """Returns the first truthy value of `condition()`; fails after `timeout` seconds. Tries
    every `interval` seconds if given (a test that times what it sees), else backs off."""
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE if interval is None else interval
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # the condition may race a starting process
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message or condition}{detail}"
            )
        time.sleep(pause)
        if interval is None:
            pause = min(pause * 1.5, LAST_PAUSE)
