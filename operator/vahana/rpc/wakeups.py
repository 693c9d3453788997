"""Wakes long-polling workers when something is there for them.

A wake-up for one worker (a lease of it ended) sets that worker's event. A wake-up for anyone
(tasks were queued: a submission, a retry come due, a quota raised) is a broadcast, and it does
not wake every waiting poll: with hundreds of idle workers, one submitted task woke all of them
and each ran a dispatch decision that found nothing (about 80 µs of the scheduler's CPU per idle
worker per submission, so 19 ms per task with 200 idle workers). A broadcast wakes as many
waiting polls as there are queued tasks, in the order the polls came; the others keep their turn.
A poll woken by a broadcast hands the turn on after its decision while tasks are still queued
(`settle`): a worker that could not take them (another pool, too small, a quota) lets the next
one look, so every waiting worker is still looked at, once per broadcast, if it takes that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Wakeups:
    def __init__(self, queued: Callable[[], int] = lambda: 1 << 30) -> None:
        """`queued()`: how many tasks wait for a worker (the scheduler's queue length); the
        default wakes every waiting poll, as a plain broadcast would."""
        self._queued = queued
        self._events: dict[str, asyncio.Event] = {}
        """Each worker with a poll under way → its event; in the order the polls came."""
        self._waiting: dict[str, int] = {}
        self._turns: dict[str, None] = {}
        """Workers the broadcast under way has not woken yet, in turn (an ordered set)."""
        self._full: set[str] = set()
        """Workers whose poll asks for no task (every slot busy): a broadcast passes them by;
        a lease of theirs that ends wakes them by name."""
        self._owed: set[str] = set()
        """Workers woken by a broadcast that have not settled it yet."""
        self.woken_by_broadcasts = 0
        """Polls woken by broadcasts in all (a figure for tests and the benchmark)."""

    @property
    def waiting(self) -> int:
        """Polls waiting now (each has looked for work and found none)."""
        return sum(self._waiting.values())

    def wake(self, worker_id: str | None) -> None:
        if worker_id is not None:
            event = self._events.get(worker_id)
            if event is not None:
                event.set()
            return
        self._turns = {
            worker: None
            for worker, event in self._events.items()
            if not event.is_set() and worker not in self._full
        }
        self._take_turns(self._queued())

    def arm(self, worker_id: str, *, wants_tasks: bool = True) -> asyncio.Event:
        """The event a poll waits on; cleared before the poll looks for work, so no wake is lost.
        `wants_tasks`: False for a poll that asks for none (its worker is full)."""
        if wants_tasks:
            self._full.discard(worker_id)
        else:
            self._full.add(worker_id)
        event = self._events.get(worker_id)
        if event is None:
            event = self._events[worker_id] = asyncio.Event()
        event.clear()
        return event

    def settle(self, worker_id: str) -> None:
        """Called once a poll has looked for work: if a broadcast woke it and tasks are still
        queued, the next worker in turn is woken to look."""
        if worker_id in self._owed:
            self._owed.discard(worker_id)
            if self._turns and self._queued() > 0:
                self._take_turns(1)

    def release(self, worker_id: str) -> None:
        """A poll of the worker has ended. Forgets the worker's event when no poll of it waits
        (ids of gone workers pile up otherwise); a turn it owed is handed on. Nothing is lost:
        every poll arms afresh and looks before it waits."""
        self.settle(worker_id)
        if not self._waiting.get(worker_id):
            self._forget(worker_id)

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
                self._forget(worker_id)

    def _forget(self, worker_id: str) -> None:
        self._events.pop(worker_id, None)
        self._turns.pop(worker_id, None)
        self._full.discard(worker_id)

    def _take_turns(self, count: int) -> None:
        while count > 0 and self._turns:
            worker = next(iter(self._turns))
            del self._turns[worker]
            event = self._events.get(worker)
            if event is None or event.is_set():
                continue  # gone, or woken meanwhile for a reason of its own
            event.set()
            self._owed.add(worker)
            self.woken_by_broadcasts += 1
            count -= 1
