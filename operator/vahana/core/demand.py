"""How many queued tasks each WorkerPool should scale for: one pure function over all pools.

A queued task counts as demand for at most one pool, so that one task never makes several
pools start a worker:

- A task pinned to a pool (`task.pool`) counts for that pool only, if a new worker of it could
  run the task; otherwise for none.
- A task that could run on new workers of several pools counts for the pool whose workers fit
  it most tightly: the smallest worker (cpu, then memory, then gpus) that is big enough, so
  that big workers are started for the tasks that need them; ties go to the pool key that
  sorts first. The rule is deterministic: every reconcile round agrees on it.
- A new worker of a pool "could run" a task when its capacity and labels fit the task (as the
  matcher judges an idle worker: an undeclared cpu or memory amount does not limit) and, for
  pools whose workers live for a walltime, when the task's timeout fits in that walltime (a
  pilot is never given a task its allocation would cut off; a 1-hour SLURM pool facing 2-hour
  tasks has no demand and scales down).

A pool that can run none of the queued tasks has no demand: it shrinks to its minimum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from vahana.core import matching, models


@dataclasses.dataclass(frozen=True)
class PoolOffer:
    """What a new worker of one pool would offer."""

    key: str
    """The pool as the scheduler knows it (`<namespace>/<name>`)."""
    capacity: models.Resources
    """One worker's resources and labels."""
    walltime_seconds: float | None = None
    """How long a new worker lives (its allocation); None: without end."""


def can_run(offer: PoolOffer, task: models.TaskRecord) -> bool:
    """True if a new worker of the pool could run the task from start to timeout."""
    if task.pool and task.pool != offer.key:
        return False
    if not matching.fits_capacity(task.spec.resources, offer.capacity):
        return False
    timeout = task.spec.timeout_seconds
    return not (offer.walltime_seconds and timeout > offer.walltime_seconds)


def _size(offer: PoolOffer) -> tuple[float, float, int, str]:
    capacity = offer.capacity
    # An undeclared amount (0) offers everything: it sorts after every declared one.
    cpu = capacity.cpu_cores if capacity.cpu_cores > 0 else float("inf")
    memory = capacity.memory_bytes if capacity.memory_bytes > 0 else float("inf")
    return (cpu, memory, capacity.gpus, offer.key)


def pool_for(task: models.TaskRecord, offers: Sequence[PoolOffer]) -> str | None:
    """The pool the task counts for (see the module's rule); None if no pool could run it."""
    fitting = [offer for offer in offers if can_run(offer, task)]
    if not fitting:
        return None
    return min(fitting, key=_size).key


def demand(tasks: Iterable[models.TaskRecord], offers: Sequence[PoolOffer]) -> Mapping[str, int]:
    """Queued tasks counted for each pool (every pool of `offers` has an entry)."""
    counts = {offer.key: 0 for offer in offers}
    chosen: dict[tuple[object, ...], str | None] = {}
    for task in tasks:
        # Tasks of one shape fit the same pools: decide once per shape.
        shape = (task.pool, task.spec.resources.shape(), task.spec.timeout_seconds)
        if shape not in chosen:
            chosen[shape] = pool_for(task, offers)
        pool = chosen[shape]
        if pool is not None:
            counts[pool] += 1
    return counts
