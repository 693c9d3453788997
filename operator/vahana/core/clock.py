"""Time and id sources, injected so that logic and tests never read the real clock directly."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable

Clock = Callable[[], float]
IdFactory = Callable[[], str]


def system_clock() -> float:
    return time.time()


def random_task_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def counting_ids(prefix: str = "t-") -> IdFactory:
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):06d}"
