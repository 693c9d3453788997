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

The decayed usage outlives a restart: the scheduler writes each queue's `SavedUsage` now and
then (those whose usage changed, `needs_saving`) and when it stops, and a restarted one starts
each queue from it (`restored`), decayed over the time it was away.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import NamedTuple

from vahana.core import models

DEFAULT_QUEUE = "default"
DEFAULT_HALF_LIFE_SECONDS = 3600.0
"""Usage half-life: work done an hour ago weighs half as much as work done now."""


class Amount(NamedTuple):
    """What tasks hold at once: running tasks, cpu cores, memory bytes, gpus. (A named tuple:
    one is made on every dispatch and every end of an attempt, and tuples are made fastest.)"""

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


NOTHING = Amount()

Mark = tuple[float, float, float, "Amount", str, "Amount | None"]
"""What `QueueUsage.move` changes, as it was: `restore` puts it back (a rolled-back plan)."""


class QueueUsage:
    """What a queue holds now and its decayed usage, as of `as_of`.

    Changed in place by `move` — a dispatch and an attempt's end each move it, so it is not
    copied then — and put back with `restore(mark)`; `started`/`stopped` give changed copies.
    """

    __slots__ = ("decayed", "as_of", "cores", "total", "by_pool")

    def __init__(
        self,
        decayed: float = 0.0,
        as_of: float = 0.0,
        cores: float = 0.0,
        total: Amount = NOTHING,
        by_pool: Mapping[str, Amount] | None = None,
    ) -> None:
        self.decayed = decayed
        """Core-seconds held up to `as_of`, each second weighted 2^(-age / half-life)."""
        self.as_of = as_of
        self.cores = cores
        """Cores its running tasks count for (at least 1 each: a task holds a slot)."""
        self.total = total
        self.by_pool: dict[str, Amount] = dict(by_pool or {})

    def copy(self) -> QueueUsage:
        return QueueUsage(self.decayed, self.as_of, self.cores, self.total, self.by_pool)

    def mark(self, pool: str) -> Mark:
        return (self.decayed, self.as_of, self.cores, self.total, pool, self.by_pool.get(pool))

    def restore(self, mark: Mark) -> None:
        self.decayed, self.as_of, self.cores, self.total, pool, in_pool = mark
        if in_pool is None:
            self.by_pool.pop(pool, None)
        else:
            self.by_pool[pool] = in_pool

    def move(
        self, pool: str, need: models.Resources, now: float, half_life: float, sign: int
    ) -> Mark:
        """A task needing `need` started (`sign` 1) or stopped (-1) on a worker of `pool`;
        returns the mark of before (`restore` undoes the move)."""
        held = self.by_pool.get(pool, NOTHING)
        mark = (
            self.decayed,
            self.as_of,
            self.cores,
            self.total,
            pool,
            held if held.tasks else None,
        )
        elapsed = now - self.as_of
        if elapsed > 0:
            rate = _LN2 / half_life
            keep = math.exp(-rate * elapsed)
            self.decayed = self.decayed * keep + self.cores * (1.0 - keep) / rate
            self.as_of = now
        cpu, memory, gpus = need.cpu_cores, need.memory_bytes, need.gpus
        total = self.total
        if total.tasks + sign <= 0:
            self.total, self.cores = NOTHING, 0.0
        else:
            self.total = Amount(
                total.tasks + sign,
                total.cpu_cores + sign * cpu,
                total.memory_bytes + sign * memory,
                total.gpus + sign * gpus,
            )
            cores = self.cores + sign * (cpu if cpu > 1.0 else 1.0)
            self.cores = cores if cores > 0.0 else 0.0
        if held.tasks + sign <= 0:
            self.by_pool.pop(pool, None)
        else:
            self.by_pool[pool] = Amount(
                held.tasks + sign,
                held.cpu_cores + sign * cpu,
                held.memory_bytes + sign * memory,
                held.gpus + sign * gpus,
            )
        return mark


_LN2 = math.log(2)


@dataclasses.dataclass(frozen=True, slots=True)
class SavedUsage:
    """A queue's decayed usage as the store keeps it: `decayed` core-seconds as of `as_of`
    (nothing is running in it any more as far as the record goes: a restart adds the tasks
    it finds leased)."""

    queue: str
    decayed: float
    as_of: float


def saved(queue: str, usage: QueueUsage, now: float, half_life: float) -> SavedUsage:
    """What to keep of a queue's usage at `now`: its decayed usage there, the cores that ran
    since its `as_of` included (so a save loses nothing of what ran before it)."""
    return SavedUsage(queue, decayed_at(usage, now, half_life), now)


def needs_saving(usage: QueueUsage, saved_as_of: float | None) -> bool:
    """Whether the usage went another way than the row written as of `saved_as_of` (None:
    none was) says: a row decays on its own exactly as an idle queue does, so only a queue
    that ran something since — it holds cores now, or it moved after the row — differs."""
    return saved_as_of is None or usage.cores > 0.0 or usage.as_of > saved_as_of


def restored(row: SavedUsage, now: float, half_life: float) -> QueueUsage:
    """The usage a restarted scheduler starts a queue with at `now`: the kept one, decayed
    to `now`, holding nothing. A row from the future (the clock went back) counts as of now,
    one that is not a finite number of core-seconds ≥ 0 as none (it would rank forever)."""
    decayed = row.decayed if math.isfinite(row.decayed) and row.decayed > 0.0 else 0.0
    as_of = min(row.as_of, now) if math.isfinite(row.as_of) else now
    return QueueUsage(decayed_at(QueueUsage(decayed, as_of), now, half_life), now)


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


def share_terms(
    usage: QueueUsage, weight: float, anchor: float, half_life: float
) -> tuple[float, float]:
    """(a, b) such that `share(usage, weight, now, half_life)` = a × 2^(-(now - anchor) /
    half-life) + b for every `now` ≥ `usage.as_of` until the usage changes: with the factor
    computed once, ranking many queues costs a multiply and an add each. `anchor` is any time
    not far before `as_of` (2^((as_of - anchor) / half-life) must stay a float)."""
    rate = math.log(2) / half_life
    settled = usage.cores / rate  # where the decayed usage tends while `cores` run on
    a = (usage.decayed - settled) * math.exp(rate * (usage.as_of - anchor)) / half_life
    b = settled / half_life + usage.cores
    return a / weight, b / weight


def started(
    usage: QueueUsage, pool: str, need: models.Resources, now: float, half_life: float
) -> QueueUsage:
    """A copy of the queue's usage once a task needing `need` started on a worker of `pool`."""
    changed = usage.copy()
    changed.move(pool, need, now, half_life, 1)
    return changed


def stopped(
    usage: QueueUsage, pool: str, need: models.Resources, now: float, half_life: float
) -> QueueUsage:
    changed = usage.copy()
    changed.move(pool, need, now, half_life, -1)
    return changed


def exceeds(
    config: QueueConfig | None, usage: QueueUsage | None, pool: str, need: models.Resources
) -> bool:
    """Whether one more task needing `need` on a worker of `pool` would go past a quota of
    the queue (`over_quota` says which; this is its test alone, asked on every dispatch)."""
    if config is None or not config.quotas:
        return False
    for quota in config.quotas:
        if quota.pool:
            if quota.pool != pool:
                continue
            held = usage.by_pool.get(pool, NOTHING) if usage is not None else NOTHING
        else:
            held = usage.total if usage is not None else NOTHING
        if (
            (quota.tasks is not None and held.tasks >= quota.tasks)
            or (
                quota.cpu_cores is not None
                and held.cpu_cores + need.cpu_cores > quota.cpu_cores + 1e-9
            )
            or (
                quota.memory_bytes is not None
                and held.memory_bytes + need.memory_bytes > quota.memory_bytes
            )
            or (quota.gpus is not None and held.gpus + need.gpus > quota.gpus)
        ):
            return True
    return False


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
