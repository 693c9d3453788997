"""Sharing the event loop during long work: a large submission lets other calls in every ~2 ms.

gRPC's asyncio server accepts one new call per turn of the event loop, so work that holds the
loop for 70 ms lets in about 14 calls a second, and a queue of heartbeats builds up behind it.
`Pacer.turn()` yields once the current slice of work has lasted `turn_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

TURN_SECONDS = 0.002
REST_SECONDS = 0.0005


class Pacer:
    def __init__(
        self, turn_seconds: float = TURN_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._turn = turn_seconds
        self._clock = clock
        self._since = clock()

    async def turn(self) -> None:
        """Yields to the event loop if this slice of work is over."""
        if self._clock() - self._since >= self._turn:
            await asyncio.sleep(REST_SECONDS)
            self._since = self._clock()
