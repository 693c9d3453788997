"""How many workers a pool wants, and which idle ones to let go: pure decisions."""

from __future__ import annotations

import math
from collections.abc import Sequence

from vahana.core import models


def desired_workers(
    *, minimum: int, maximum: int, pending: int, busy_workers: int, tasks_per_worker: int
) -> int:
    """Enough workers for the busy ones plus the pending tasks, between `minimum` and `maximum`."""
    wanted = busy_workers + math.ceil(pending / max(1, tasks_per_worker))
    return max(minimum, min(maximum, wanted))


def idle_to_release(
    workers: Sequence[models.WorkerRecord], *, excess: int, now: float, idle_timeout: float
) -> list[str]:
    """Up to `excess` workers that hold no task and have been idle for `idle_timeout` seconds,
    longest idle first. A busy worker is never chosen."""
    idle = [
        w
        for w in workers
        if not w.leases
        and w.state == models.WorkerState.AVAILABLE
        and w.idle_since is not None
        and now - w.idle_since >= idle_timeout
    ]
    idle.sort(key=lambda w: (w.idle_since, w.id))
    return [w.id for w in idle[: max(0, excess)]]


def expiring(
    workers: Sequence[models.WorkerRecord], *, now: float, lead_seconds: float
) -> list[str]:
    """Workers whose allocation ends within `lead_seconds` (drain time + a margin + the time a
    replacement takes to start): they no longer count as capacity, so that a replacement is
    running before they expire. Draining and unhealthy workers are left out (not counted anyway)."""
    return [
        w.id
        for w in workers
        if w.state not in (models.WorkerState.DRAINING, models.WorkerState.UNHEALTHY)
        and w.allocation_ends_at is not None
        and w.allocation_ends_at - now <= lead_seconds
    ]
