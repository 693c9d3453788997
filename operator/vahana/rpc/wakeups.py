"""Wakes long-polling workers when something is there for them."""

from __future__ import annotations

import asyncio


class Wakeups:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}

    def wake(self, worker_id: str | None) -> None:
        if worker_id is None:
            for event in self._events.values():
                event.set()
        elif worker_id in self._events:
            self._events[worker_id].set()

    def arm(self, worker_id: str) -> asyncio.Event:
        """The event a poll waits on; cleared before the poll looks for work, so no wake is lost."""
        event = self._events.get(worker_id)
        if event is None:
            event = self._events[worker_id] = asyncio.Event()
        event.clear()
        return event

    def release(self, worker_id: str) -> None:
        """Forgets the worker's event when no poll of it waits (ids of gone workers pile up
        otherwise). Nothing is lost: every poll arms afresh and looks before it waits."""
        if not self._waiting.get(worker_id):
            self._events.pop(worker_id, None)

    async def wait(self, worker_id: str, event: asyncio.Event, timeout: float) -> bool:
        """Waits for a wake-up or the timeout; True if woken."""
        self._waiting[worker_id] = self._waiting.get(worker_id, 0) + 1
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            left = self._waiting[worker_id] - 1
            if left:
                self._waiting[worker_id] = left
            else:
                del self._waiting[worker_id]
                self._events.pop(worker_id, None)
