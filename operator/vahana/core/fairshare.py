"""Queues: weighted fair share over decayed usage, and quotas that may borrow idle capacity.

Every task belongs to a queue (`queue_of`). A queue's *usage* is the core-seconds its tasks
held, decayed with a half-life (`QueueUsage.decayed`, kept in closed form: a constant number
of running cores integrates and decays exactly, so nothing is sampled). Which queue dispatches
next is the one with the lowest *share*: (decayed usage ÷ half-life + cores running now) ÷
weight. Both terms are in cores: a queue that keeps r cores busy settles at a decayed usage of
r × half-life ÷ ln 2, so in a steady state the share is proportional to the cores it holds,
and two flooding queues split a pool in the ratio of their weights from the first dispatch on;
a queue that ran a lot recently yields to one that did not, for about a half-life.

A quota bounds what a queue holds at once — running tasks, cpu, memory, gpus — in one pool or
over all pools. A queue at its quota may still *borrow*: it gets a task only when no queue
within its quotas has one the worker could run (the capacity would stay idle otherwise), unless
it forbids borrowing. Borrowed work is never stopped to give capacity back: new work waits.
Pure logic: the scheduler keeps one `QueueUsage` per queue and replaces it on every change.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from vahana.core import models

DEFAULT_QUEUE = "default"
DEFAULT_HALF_LIFE_SECONDS = 3600.0
"""Usage half-life: work done an hour ago weighs half as much as work done now."""


@dataclasses.dataclass(frozen=True, slots=True)
class Amount:
    """What tasks hold at once: running tasks, cpu cores, memory bytes, gpus."""

    tasks: int = 0
    cpu_cores: float = 0.0
    memory_bytes: int = 0
    gpus: int = 0

    def plus(self, other: Amount, sign: int = 1) -> Amount:
        return Amount(
            self.tasks + sign * other.tasks,
            self.cpu_cores + sign * other.cpu_cores,
            self.memory_bytes + sign * other.memory_bytes,
            self.gpus + sign * other.gpus,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Quota:
    """The most a queue may hold at once in `pool` ("": in all pools together); None: no bound
    on that dimension."""

    pool: str = ""
    tasks: int | None = None
    cpu_cores: float | None = None
    memory_bytes: int | None = None
    gpus: int | None = None

    def exceeded_by(self, held: Amount) -> str:
        """The first dimension `held` goes past, as "2/2 running tasks"; "" if none."""
        if self.tasks is not None and held.tasks > self.tasks:
            return f"{held.tasks - 1}/{self.tasks} running tasks"
        if self.cpu_cores is not None and held.cpu_cores > self.cpu_cores + 1e-9:
            return f"cpu {_num(held.cpu_cores)} > {_num(self.cpu_cores)}"
        if self.memory_bytes is not None and held.memory_bytes > self.memory_bytes:
            return f"memory {_mib(held.memory_bytes)} > {_mib(self.memory_bytes)}"
        if self.gpus is not None and held.gpus > self.gpus:
            return f"gpus {held.gpus} > {self.gpus}"
        return ""


@dataclasses.dataclass(frozen=True, slots=True)
class QueueConfig:
    """A queue: its weight in the fair share, its quotas, whether it may borrow."""

    name: str
    weight: float = 1.0
    quotas: tuple[Quota, ...] = ()
    borrowing: bool = True
    """May go past its quotas onto capacity no queue within its quotas waits for."""


@dataclasses.dataclass(frozen=True, slots=True)
class QueueUsage:
    """What a queue holds now and its decayed usage, as of `as_of`."""

    decayed: float = 0.0
    """Core-seconds held up to `as_of`, each second weighted 2^(-age / half-life)."""
    as_of: float = 0.0
    cores: float = 0.0
    """Cores its running tasks count for (at least 1 each: a task holds a slot)."""
    total: Amount = Amount()
    by_pool: Mapping[str, Amount] = dataclasses.field(default_factory=dict)


def queue_of(task: models.TaskRecord) -> str:
    """The queue a task belongs to: its own, else its namespace's, else `default`."""
    return task.spec.queue or task.namespace or DEFAULT_QUEUE


def amount_of(need: models.Resources) -> Amount:
    return Amount(1, need.cpu_cores, need.memory_bytes, need.gpus)


def cores_of(need: models.Resources) -> float:
    return max(1.0, need.cpu_cores)


def decayed_at(usage: QueueUsage, now: float, half_life: float) -> float:
    """The decayed usage at `now`: the past decays, the cores running since `as_of` add up."""
    elapsed = now - usage.as_of
    if elapsed <= 0:
        return usage.decayed
    rate = math.log(2) / half_life
    keep = math.exp(-rate * elapsed)
    return usage.decayed * keep + usage.cores * (1.0 - keep) / rate


def share(usage: QueueUsage, weight: float, now: float, half_life: float) -> float:
    """The queue's place in the fair share: lower dispatches first (in cores per weight)."""
    return (decayed_at(usage, now, half_life) / half_life + usage.cores) / weight


def started(
    usage: QueueUsage, pool: str, need: models.Resources, now: float, half_life: float
) -> QueueUsage:
    """The queue's usage once a task needing `need` started on a worker of `pool`."""
    return _moved(usage, pool, need, now, half_life, 1)


def stopped(
    usage: QueueUsage, pool: str, need: models.Resources, now: float, half_life: float
) -> QueueUsage:
    return _moved(usage, pool, need, now, half_life, -1)


def _moved(
    usage: QueueUsage, pool: str, need: models.Resources, now: float, half_life: float, sign: int
) -> QueueUsage:
    held = amount_of(need)
    by_pool = dict(usage.by_pool)
    in_pool = by_pool.get(pool, Amount()).plus(held, sign)
    if in_pool.tasks <= 0:
        by_pool.pop(pool, None)
    else:
        by_pool[pool] = in_pool
    total = usage.total.plus(held, sign)
    cores = usage.cores + sign * cores_of(need) if total.tasks > 0 else 0.0
    return QueueUsage(
        decayed=decayed_at(usage, now, half_life),
        as_of=max(now, usage.as_of),
        cores=max(0.0, cores),
        total=total if total.tasks > 0 else Amount(),
        by_pool=by_pool,
    )


def over_quota(
    config: QueueConfig | None, usage: QueueUsage | None, pool: str, need: models.Resources
) -> str:
    """Why one more task needing `need` on a worker of `pool` would go past a quota of the
    queue ("quota of pool gpu: 2/2 running tasks"); "" when it stays within them all."""
    if config is None or not config.quotas:
        return ""
    usage = usage or QueueUsage()
    held = amount_of(need)
    for quota in config.quotas:
        if quota.pool and quota.pool != pool:
            continue
        now_held = usage.by_pool.get(pool, Amount()) if quota.pool else usage.total
        excess = quota.exceeded_by(now_held.plus(held))
        if excess:
            where = f"in pool {quota.pool}" if quota.pool else "overall"
            return f"queue {config.name} is at its quota {where}: {excess}"
    return ""


def hold_reason(
    config: QueueConfig | None, usage: QueueUsage | None, task: models.TaskRecord
) -> str:
    """The pending reason of a task its queue's quota holds back, "" if none does. A task that
    names its pool is judged there; one that does not, by the quota over all pools."""
    held = over_quota(config, usage, task.pool, task.spec.resources)
    if not held or config is None:
        return ""
    if config.borrowing:
        return f"{held}; may borrow capacity that no other queue waits for"
    return f"{held} (borrowing off)"


def _num(value: float) -> str:
    return f"{value:g}"


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f}Mi"
