"""Workers whose end a pool saw, told to the scheduler at once (`Scheduler.worker_exited`).

Adapters that watch their workers' processes (local workers, the ssh of bare-metal pilots)
call their exit listener from a thread of theirs the moment one ends; reconcile rounds find
ended Jobs and SLURM jobs. Either way the worker is lost now instead of after its missed
heartbeats. A listener hops onto the scheduler's event loop (the scheduler is not
thread-safe) and the operation is committed there like any other; a worker that drained and
said TERMINATED is gone already, and telling of it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from vahana.pools import base as pools
from vahana.scheduling import scheduler
from vahana.store import base as store_base

log = logging.getLogger(__name__)


class ExitReporter:
    """Tells one scheduler of workers that ended; hands adapters an `ExitListener`."""

    def __init__(self, sched: scheduler.Scheduler) -> None:
        self._scheduler = sched
        self._pending: set[asyncio.Future[bool]] = set()
        """Tellings under way (kept so that they are not collected before they run)."""
        self._closed = False

    def listener(self, loop: asyncio.AbstractEventLoop) -> pools.ExitListener:
        """An exit listener for adapters, callable from any thread; `loop` runs the scheduler."""

        def heard(worker_id: str, why: str) -> None:
            # A closed loop: the scheduler process is ending, and nobody is left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._start, worker_id, why)

        return heard

    def listen(self, adapter: pools.WorkerPool) -> None:
        """Gives the adapter a listener on the running loop, if it watches its workers' exits
        (the others' exits are found by the reconcile rounds)."""
        if hasattr(adapter, "exit_listener"):
            watching: pools.WatchesExits = adapter  # type: ignore[assignment]
            watching.exit_listener = self.listener(asyncio.get_running_loop())

    async def tell(self, worker_id: str, why: str) -> bool:
        """Tells the scheduler that the worker ended; True if that lost it (it was registered
        and not given up on already)."""
        try:
            lost = await self._scheduler.worker_exited_async(worker_id, why)
        except store_base.StoreUnavailable as error:
            # Not saved: its missed heartbeats will tell the health monitor instead.
            log.warning("worker exit not saved worker_id=%s (%s): %s", worker_id, why, error)
            return False
        if not lost:
            log.debug("worker ended after leaving worker_id=%s: %s", worker_id, why)
        return lost

    async def close(self) -> None:
        """Tells what was heard so far, then nothing more: the scheduler is stopping (its
        workers' processes end with it, and its store is about to close)."""
        self._closed = True
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _start(self, worker_id: str, why: str) -> None:
        if self._closed:
            log.debug("worker ended while the scheduler stops worker_id=%s: %s", worker_id, why)
            return
        told = asyncio.ensure_future(self.tell(worker_id, why))
        self._pending.add(told)
        told.add_done_callback(self._done)

    def _done(self, told: asyncio.Future[bool]) -> None:
        self._pending.discard(told)
        if not told.cancelled() and told.exception() is not None:
            log.error("telling of a worker's exit failed", exc_info=told.exception())
