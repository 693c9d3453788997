"""Keeps the embedded default's local workers (`--workers N`) at N: a worker whose process
ends while the scheduler runs — killed, crashed, out of memory — is replaced.

Without it a `vahana run` whose workers all died would wait forever for tasks that nothing
can run. WorkerPools of `--pool-file` files need none of this: their reconcile rounds start
what is missing.

A worker that ended soon after it started (a bad flag, a full disk, a broken environment)
would end again: such replacements wait, longer each time (`RestartPolicy`), so that a
broken worker is not forked in a tight loop. After `RestartPolicy.cannot_start_after` such
ends in a row of workers that never registered, the keeper says so (`cannot_start`), with the
last one's reason: `vahana run` then stops with that error if no worker is left to run its
tasks, rather than wait forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from vahana.pools import base as pool_base
from vahana.pools import local

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RestartPolicy:
    """How long to wait before replacing a worker, from how long it lived."""

    healthy_after: float = 10.0
    """Seconds of life after which a worker's end says nothing about the next one."""
    first_pause: float = 1.0
    max_pause: float = 60.0
    quick_ends: int = 0
    """Workers in a row that ended before `healthy_after`."""
    cannot_start_after: int = 3
    """Quick ends in a row, without registering, after which the workers cannot start."""

    def pause_after(self, lived: float) -> float:
        """Seconds to wait before starting the replacement of a worker that lived `lived`."""
        if lived >= self.healthy_after:
            self.quick_ends = 0
            return 0.0
        # The exponent is capped: a crash loop of days must not overflow the float.
        pause: float = min(self.max_pause, self.first_pause * 2.0 ** min(self.quick_ends, 32))
        self.quick_ends += 1
        return pause


class WorkersCannotStart(Exception):
    """The local workers end as they start, and none is left to run the tasks."""


class LocalWorkerKeeper:
    """Starts the pool's workers and replaces those that end, until `stop()`."""

    def __init__(
        self,
        pool: local.LocalPool,
        *,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        registered: Callable[[str], bool] = lambda worker_id: False,
    ) -> None:
        """`registered(worker_id)`: whether the scheduler holds that worker, asked as it
        ends, before the scheduler hears of its end (one that registered and then ended
        quickly, killed by a task, say, could start)."""
        self._pool = pool
        self._registered = registered
        self._unregistered_ends = 0
        self._policy = policy or RestartPolicy()
        self._clock = clock
        self._started_at: dict[str, float] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self.cannot_start: str | None = None
        """Why the workers end as they start (several in a row did), or None."""

    def start(self, count: int) -> None:
        """Starts `count` workers, and listens for their ends (on the running loop) on top of
        the listener the pool has already (the scheduler's, which loses them at once)."""
        loop = self._loop = asyncio.get_running_loop()
        told = self._pool.exit_listener

        def heard(worker_id: str, why: str) -> None:
            # Queued first: the loop runs it before the scheduler, told next, forgets the
            # worker (`registered` looks it up).
            with contextlib.suppress(RuntimeError):  # the loop is closed: the process ends
                loop.call_soon_threadsafe(self._ended, worker_id, why)
            if told is not None:
                told(worker_id, why)

        self._pool.exit_listener = heard
        self._start(count)

    def stop(self) -> None:
        """No replacement from now on: the pool is about to be closed."""
        self._stopped = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _start(self, count: int) -> None:
        now = self._clock()
        for worker_id in self._pool.start_workers(count):
            self._started_at[worker_id] = now

    def _ended(self, worker_id: str, why: str) -> None:
        if self._stopped or worker_id not in self._started_at:
            return
        lived = self._clock() - self._started_at.pop(worker_id)
        self._pool.stop_workers([worker_id])  # forgets the ended process
        pause = self._policy.pause_after(lived)
        if lived < self._policy.healthy_after and not self._registered(worker_id):
            self._unregistered_ends += 1
        else:
            self._unregistered_ends = 0
            self.cannot_start = None
        if self._unregistered_ends >= self._policy.cannot_start_after:
            self.cannot_start = (
                f"{self._unregistered_ends} local workers in a row ended within "
                f"{self._policy.healthy_after:g}s of their start without registering; the last "
                f"one, {worker_id}: {why}"
            )
        if pause:
            log.warning(
                "local worker ended %.1fs after it started; its replacement in %.0fs "
                "worker_id=%s: %s",
                lived,
                pause,
                worker_id,
                why,
            )
        else:
            log.warning("local worker ended; starting another worker_id=%s: %s", worker_id, why)
        self._later(pause)

    def _later(self, pause: float) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self._timers = {timer for timer in self._timers if timer.when() > now}  # those to come
        self._timers.add(self._loop.call_later(pause, self._replace))

    def _replace(self) -> None:
        if self._stopped:
            return
        try:
            self._start(1)
        except pool_base.PoolError as error:
            # The zygote could not fork: tried again later, as for a worker that ended at once.
            log.error("could not start a replacement local worker: %s", error)
            self._later(self._policy.pause_after(0.0))
