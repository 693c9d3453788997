"""The scheduler's memory: tasks, attempts, workers and the queue, changed only through `Change`.

Records are never modified once they are live: a `Change` copies a record before it modifies
it (`edit_task`, `edit_worker`, `edit_attempt`) and installs the copy, noting the version it
replaced in its plan. So a record handed to a listener, an answer or the store writer stays as
it was, and `revert(plan)` puts every replaced version back: memory is exactly as before.

The one exception is liveness (`seen`): when a worker was last heard from, its last heartbeat
and metrics. They are observations, not decisions; they are written in place, never undone
(a rolled-back operation does not make a worker that spoke to us silent).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

from vahana.core import fairshare, models
from vahana.core import queue as task_queue
from vahana.scheduling import plan as plans
from vahana.scheduling import records

FINISHED_KEPT = 10_000
"""Finished tasks kept in memory (the newest), so that replays of their reports and reads of
their status need no store read."""


def _fields(record_type: type) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving a record's fields, in the order its constructor takes them."""
    return operator.attrgetter(*(field.name for field in dataclasses.fields(record_type)))


_TASK_FIELDS = _fields(models.TaskRecord)
_WORKER_FIELDS = _fields(models.WorkerRecord)
_ATTEMPT_FIELDS = _fields(models.AttemptRecord)


def clone_task(task: models.TaskRecord) -> models.TaskRecord:
    """A shallow copy (its spec is immutable); a fifth of `dataclasses.replace`'s cost."""
    return models.TaskRecord(*_TASK_FIELDS(task))


def clone_worker(worker: models.WorkerRecord) -> models.WorkerRecord:
    copy = models.WorkerRecord(*_WORKER_FIELDS(worker))
    copy.leases = dict(worker.leases)
    return copy


def clone_attempt(attempt: models.AttemptRecord) -> models.AttemptRecord:
    return models.AttemptRecord(*_ATTEMPT_FIELDS(attempt))


class Tables:
    """What the scheduler holds in memory. Read it freely; change it through a `Change`."""

    def __init__(self) -> None:
        self.tasks: dict[str, models.TaskRecord] = {}
        """Unfinished tasks."""
        self.finished: dict[str, models.TaskRecord] = {}
        """The newest finished tasks, oldest first."""
        self.keys: dict[str, str] = {}
        """Idempotency key → id, of the tasks in `tasks` and `finished`."""
        self.attempts: dict[records.Lease, models.AttemptRecord] = {}
        """The current attempt of each leased task."""
        self.workers: dict[str, models.WorkerRecord] = {}
        self.queue = task_queue.TaskQueue()
        self.unsent_cancels: dict[str, frozenset[records.Lease]] = {}
        self.drain_requested: set[str] = set()
        self.seq = 0
        self._all_slots: int | None = None
        self.queue_configs: dict[str, fairshare.QueueConfig] = {}
        """The queues configured (Queue resources, queue files); others have weight 1 and
        no quota. Configuration, not state: set by the scheduler, never undone."""
        self.usage: dict[str, fairshare.QueueUsage] = {}
        """Each queue's usage, changed in place (`QueueUsage.move`): the undo entry of a
        change holds its `mark`."""
        self.holding: dict[str, tuple[str, str]] = {}
        """Task id → (queue, worker pool) of every task that counts in its queue's usage."""
        self.waiting: dict[str, int] = {}
        """Dependent task id → its upstream tasks not ended yet (`waits`): a PENDING task held
        out of the queue, so that dispatch never looks at it until its upstream tasks end."""
        self.dependents: dict[str, tuple[tuple[str, models.Condition], ...]] = {}
        """Upstream task id → (dependent id, condition) of the tasks waiting for it."""
        self.half_life = fairshare.DEFAULT_HALF_LIFE_SECONDS
        self.terms: dict[str, tuple[float, float]] = {}
        """Each queue's `fairshare.share_terms` from `anchor`, kept with its usage: ranking
        the queues on a dispatch is then a multiply and an add per queue."""
        self.anchor = 0.0
        self.stale: set[str] = set()
        """Queues whose terms are out of date."""
        self.quotas = False
        """Whether any configured queue has a quota (else dispatch skips the quota test)."""
        self.usage_saved: dict[str, float] = {}
        """Queue → the `as_of` of its usage's row in the store (as decided: a save rolled
        back is undone here too), to write only the queues whose usage changed since."""
        self.usage_saved_at = 0.0
        """When the usage was last written (the periodic saves are spaced from it)."""

    def restore_usage(self, row: fairshare.SavedUsage, now: float) -> None:
        """On a restart, before the tasks found leased are counted: the queue's decayed usage
        starts from what the store kept, decayed to `now` (its row says as much: it needs no
        writing until the queue runs something)."""
        self.usage[row.queue] = fairshare.restored(row, now, self.half_life)
        self.usage_saved[row.queue] = now
        self.reterm(row.queue)

    def recovered_holding(self, task: models.TaskRecord, pool: str, now: float) -> None:
        """A task found leased on a restart counts in its queue's usage from `now` on, on top
        of the decayed usage kept from before the restart (`restore_usage`)."""
        queue = fairshare.queue_of(task)
        usage = self.usage.get(queue)
        if usage is None:
            usage = self.usage[queue] = fairshare.QueueUsage(as_of=now)
        usage.move(pool, task.spec.resources, now, self.half_life, 1)
        self.holding[task.id] = (queue, pool)
        self.reterm(queue)

    def reterm(self, queue: str) -> None:
        """The queue's usage or weight changed: its ranking terms are made anew when next
        asked for (`fresh_terms`), which only a dispatch among several queues does."""
        self.stale.add(queue)

    def fresh_terms(self) -> dict[str, tuple[float, float]]:
        """Every queue's `fairshare.share_terms` from `anchor` (those out of date made anew)."""
        for queue in self.stale:
            usage = self.usage.get(queue)
            if usage is None:
                self.terms.pop(queue, None)
                continue
            config = self.queue_configs.get(queue)
            weight = config.weight if config is not None else 1.0
            self.terms[queue] = fairshare.share_terms(usage, weight, self.anchor, self.half_life)
        self.stale.clear()
        return self.terms

    def rank_factor(self, now: float) -> float:
        """2^(-(now - anchor) / half-life), the factor of the ranking terms; the anchor moves
        up (and every term is made anew) once it lies 64 half-lives back, so that the terms
        stay floats (a queue's usage changes at `now` at the latest)."""
        if now - self.anchor > 64 * self.half_life:
            self.anchor = now
            self.stale.update(self.usage)
        return float(2.0 ** (-(now - self.anchor) / self.half_life))

    def set_queues(self, configs: list[fairshare.QueueConfig]) -> None:
        self.queue_configs = {config.name: config for config in configs}
        self.quotas = any(config.quotas for config in configs)
        self.stale.update(self.usage)

    def task(self, task_id: str) -> models.TaskRecord | None:
        return self.tasks.get(task_id) or self.finished.get(task_id)

    @property
    def all_slots(self) -> int:
        """Sum of the registered workers' slots."""
        if self._all_slots is None:
            self._all_slots = sum(w.max_tasks for w in self.workers.values())
        return self._all_slots

    def seen(self, worker: models.WorkerRecord, now: float) -> None:
        """The worker spoke to us (liveness, never undone)."""
        worker.last_seen = now

    def trim_finished(self, keep: int) -> None:
        """Forgets the oldest finished tasks beyond `keep` (they are in the store)."""
        while len(self.finished) > keep:
            task_id = next(iter(self.finished))
            task = self.finished.pop(task_id)
            if task.key and self.keys.get(task.key) == task_id:
                del self.keys[task.key]

    # -- undo ------------------------------------------------------------------------------
    def revert(self, plan: plans.Plan, now: float) -> None:
        """Puts back every version the plan replaced, newest change first."""
        for entry in reversed(plan.undo):
            _UNDO[entry[0]](self, entry, now)
        plan.undo.clear()
        self._all_slots = None

    def _undo_task(self, entry: plans.Undo, _now: float) -> None:
        _, task_id, before = entry
        current = self.tasks.pop(task_id, None) or self.finished.pop(task_id, None)
        if current is not None and current.key and self.keys.get(current.key) == task_id:
            del self.keys[current.key]
        if before is not None:
            (self.finished if before.is_final else self.tasks)[task_id] = before
            if before.key:
                self.keys[before.key] = task_id

    def _undo_attempt(self, entry: plans.Undo, _now: float) -> None:
        _restore(self.attempts, entry)

    def _undo_worker(self, entry: plans.Undo, _now: float) -> None:
        _, worker_id, before = entry
        current = self.workers.pop(worker_id, None)
        if before is None:
            return
        if current is not None:  # keep what was observed since: it was not decided
            before.last_seen = max(before.last_seen, current.last_seen)
            before.last_heartbeat = current.last_heartbeat
            before.metrics = current.metrics
        self.workers[worker_id] = before

    def _undo_queued(self, entry: plans.Undo, now: float) -> None:
        _, task_id, before = entry
        if before is None:
            self.queue.remove(task_id)
        else:
            self.queue.push(before, now)

    def _undo_cancels(self, entry: plans.Undo, _now: float) -> None:
        _, worker_id, before = entry
        if before:
            self.unsent_cancels[worker_id] = before
        else:
            self.unsent_cancels.pop(worker_id, None)

    def _undo_drain(self, entry: plans.Undo, _now: float) -> None:
        _, worker_id, was = entry
        if was:
            self.drain_requested.add(worker_id)
        else:
            self.drain_requested.discard(worker_id)

    def _undo_seq(self, entry: plans.Undo, _now: float) -> None:
        self.seq = entry[1]

    def _undo_usage(self, entry: plans.Undo, _now: float) -> None:
        _, queue, mark, task_id, held = entry
        if mark is None:
            self.usage.pop(queue, None)
        elif queue in self.usage:
            self.usage[queue].restore(mark)
        if held is None:
            self.holding.pop(task_id, None)
        else:
            self.holding[task_id] = held
        self.reterm(queue)

    def _undo_saved(self, entry: plans.Undo, _now: float) -> None:
        _restore(self.usage_saved, entry)

    def _undo_saved_at(self, entry: plans.Undo, _now: float) -> None:
        self.usage_saved_at = entry[1]

    def _undo_waiting(self, entry: plans.Undo, _now: float) -> None:
        _restore(self.waiting, entry)

    def _undo_dependents(self, entry: plans.Undo, _now: float) -> None:
        _restore(self.dependents, entry)


_UNDO: dict[str, Callable[[Tables, plans.Undo, float], None]] = {
    "task": Tables._undo_task,
    "attempt": Tables._undo_attempt,
    "worker": Tables._undo_worker,
    "queued": Tables._undo_queued,
    "cancels": Tables._undo_cancels,
    "drain": Tables._undo_drain,
    "seq": Tables._undo_seq,
    "usage": Tables._undo_usage,
    "saved": Tables._undo_saved,
    "saved at": Tables._undo_saved_at,
    "waiting": Tables._undo_waiting,
    "dependents": Tables._undo_dependents,
}


@dataclasses.dataclass(eq=False)
class Change:
    """One operation's way to change the tables: every change lands in `plan` (the records to
    write, the versions replaced) and is live at once, so the operation's later steps — and
    the operations decided after it — see it."""

    tables: Tables
    plan: plans.Plan
    now: float
    _owned: set[int] = dataclasses.field(default_factory=set)
    """ids of the copies this change made: it may modify them further."""
    _seq_noted: bool = False

    # -- tasks -----------------------------------------------------------------------------
    def insert_task(self, task: models.TaskRecord) -> None:
        self.plan.undo.append(("task", task.id, None))
        self.tables.tasks[task.id] = task
        if task.key:
            self.tables.keys[task.key] = task.id
        self.plan.batch.inserted[task.id] = task
        self._owned.add(id(task))

    def edit_task(self, task: models.TaskRecord) -> models.TaskRecord:
        """The live task, as a copy this change may modify (and that the store will get)."""
        if id(task) in self._owned:
            return task
        assert not task.is_final, f"a finished task does not change: {task.id}"
        copy = clone_task(task)
        self.plan.undo.append(("task", task.id, task))
        self.tables.tasks[task.id] = copy
        self.plan.batch.put_task(copy)
        self._owned.add(id(copy))
        return copy

    def finish_task(self, task: models.TaskRecord) -> None:
        """Moves a task this change made final out of the live tasks."""
        assert id(task) in self._owned and task.is_final
        if self.tables.tasks.get(task.id) is task:
            del self.tables.tasks[task.id]
            self.tables.finished[task.id] = task
            self.plan.finals += 1

    def next_seq(self) -> int:
        if not self._seq_noted:
            self.plan.undo.append(("seq", self.tables.seq))
            self._seq_noted = True
        self.tables.seq += 1
        return self.tables.seq

    # -- queue -----------------------------------------------------------------------------
    def push(self, task: models.TaskRecord) -> None:
        assert task.id not in self.tables.queue, f"queued twice: {task.id}"
        self.plan.undo.append(("queued", task.id, None))
        self.tables.queue.push(task, self.now)

    def unqueue(self, task_id: str) -> None:
        removed = self.tables.queue.remove(task_id)
        if removed is not None:
            self.plan.undo.append(("queued", task_id, removed))

    def take(
        self,
        accept: Callable[[models.TaskRecord], bool],
        rank: Callable[[models.TaskRecord], int],
        order: Callable[[str], float] | None = None,
    ) -> models.TaskRecord | None:
        task = self.tables.queue.take(accept, rank, order)
        if task is not None:
            self.plan.undo.append(("queued", task.id, task))
        return task

    # -- dependencies (`waits`) --------------------------------------------------------------
    def set_waiting(self, task_id: str, unfinished: int | None) -> None:
        """How many upstream tasks the dependent still waits for; None: it waits no more."""
        before = self.tables.waiting.get(task_id)
        if before == unfinished:
            return
        self.plan.undo.append(("waiting", task_id, before))
        if unfinished is None:
            del self.tables.waiting[task_id]
        else:
            self.tables.waiting[task_id] = unfinished

    def add_dependents(
        self, upstream_id: str, entries: tuple[tuple[str, models.Condition], ...]
    ) -> None:
        before = self.tables.dependents.get(upstream_id)
        self.plan.undo.append(("dependents", upstream_id, before))
        self.tables.dependents[upstream_id] = (before or ()) + entries

    def pop_dependents(self, upstream_id: str) -> tuple[tuple[str, models.Condition], ...]:
        before = self.tables.dependents.pop(upstream_id, None)
        if before is None:
            return ()
        self.plan.undo.append(("dependents", upstream_id, before))
        return before

    # -- queue usage (fair share, quotas) ---------------------------------------------------
    def hold(self, task: models.TaskRecord, pool: str) -> None:
        """The task's attempt began on a worker of `pool`: it counts in its queue's usage."""
        live = self.tables
        if task.id in live.holding:
            return
        queue = task.spec.queue or task.namespace or fairshare.DEFAULT_QUEUE  # queue_of, inline
        usage = live.usage.get(queue)
        if usage is None:
            usage = live.usage[queue] = fairshare.QueueUsage(as_of=self.now)
            usage.move(pool, task.spec.resources, self.now, live.half_life, 1)
            self.plan.undo.append(("usage", queue, None, task.id, None))
        else:
            mark = usage.move(pool, task.spec.resources, self.now, live.half_life, 1)
            self.plan.undo.append(("usage", queue, mark, task.id, None))
        live.holding[task.id] = (queue, pool)
        live.stale.add(queue)

    def release(self, task: models.TaskRecord) -> None:
        """The task's attempt ended: it no longer counts (what it used stays, decaying)."""
        live = self.tables
        held = live.holding.pop(task.id, None)
        if held is None:
            return
        queue, pool = held
        usage = live.usage.get(queue)
        if usage is None:
            return
        mark = usage.move(pool, task.spec.resources, self.now, live.half_life, -1)
        self.plan.undo.append(("usage", queue, mark, task.id, held))
        live.stale.add(queue)

    def save_usage(self, row: fairshare.SavedUsage) -> None:
        """Writes the queue's decayed usage (`fairshare.saved`) with this plan."""
        live = self.tables
        self.plan.undo.append(("saved", row.queue, live.usage_saved.get(row.queue)))
        live.usage_saved[row.queue] = row.as_of
        self.plan.batch.usage[row.queue] = row

    def note_usage_saved(self) -> None:
        """The periodic save of the usage happens in this plan (the next one is spaced from
        it, unless the plan is rolled back)."""
        self.plan.undo.append(("saved at", self.tables.usage_saved_at))
        self.tables.usage_saved_at = self.now

    # -- attempts --------------------------------------------------------------------------
    def put_attempt(self, attempt: models.AttemptRecord) -> None:
        key = (attempt.task_id, attempt.attempt)
        self.plan.undo.append(("attempt", key, self.tables.attempts.get(key)))
        self.tables.attempts[key] = attempt
        self.plan.batch.attempts[key] = attempt
        self._owned.add(id(attempt))

    def edit_attempt(self, attempt: models.AttemptRecord) -> models.AttemptRecord:
        if id(attempt) in self._owned:
            return attempt
        copy = clone_attempt(attempt)
        self.put_attempt(copy)
        return copy

    def drop_attempt(self, key: records.Lease) -> None:
        """Forgets an ended attempt in memory (the store keeps it)."""
        before = self.tables.attempts.pop(key, None)
        if before is not None:
            self.plan.undo.append(("attempt", key, before))

    # -- workers ---------------------------------------------------------------------------
    def put_worker(self, worker: models.WorkerRecord, *, save: bool) -> None:
        """Installs a new worker record (a registration)."""
        self.plan.undo.append(("worker", worker.id, self.tables.workers.get(worker.id)))
        self.tables.workers[worker.id] = worker
        self.tables._all_slots = None
        self._owned.add(id(worker))
        if save:
            self.plan.batch.workers[worker.id] = worker

    def edit_worker(self, worker: models.WorkerRecord) -> models.WorkerRecord:
        """The live worker, as a copy this change may modify (`save_worker` to store it)."""
        if id(worker) in self._owned:
            return worker
        copy = clone_worker(worker)
        self.plan.undo.append(("worker", worker.id, worker))
        self.tables.workers[worker.id] = copy
        self._owned.add(id(copy))
        return copy

    def save_worker(self, worker: models.WorkerRecord) -> None:
        assert id(worker) in self._owned
        self.plan.batch.workers[worker.id] = worker

    def delete_worker(self, worker_id: str) -> None:
        before = self.tables.workers.pop(worker_id, None)
        self.plan.undo.append(("worker", worker_id, before))
        self.tables._all_slots = None
        self.plan.batch.workers[worker_id] = None

    # -- control messages ------------------------------------------------------------------
    def add_cancel(self, worker_id: str, lease: records.Lease) -> None:
        before = self.tables.unsent_cancels.get(worker_id)
        self.plan.undo.append(("cancels", worker_id, before))
        self.tables.unsent_cancels[worker_id] = (before or frozenset()) | {lease}

    def discard_cancel(self, worker_id: str, lease: records.Lease) -> None:
        before = self.tables.unsent_cancels.get(worker_id)
        if before and lease in before:
            self.plan.undo.append(("cancels", worker_id, before))
            self.tables.unsent_cancels[worker_id] = before - {lease}

    def pop_cancels(self, worker_id: str) -> frozenset[records.Lease]:
        before = self.tables.unsent_cancels.pop(worker_id, None)
        if before is None:
            return frozenset()
        self.plan.undo.append(("cancels", worker_id, before))
        return before

    def set_drain(self, worker_id: str, requested: bool) -> None:
        was = worker_id in self.tables.drain_requested
        if was == requested:
            return
        self.plan.undo.append(("drain", worker_id, was))
        if requested:
            self.tables.drain_requested.add(worker_id)
        else:
            self.tables.drain_requested.discard(worker_id)


def _restore(mapping: dict[Any, Any], entry: plans.Undo) -> None:
    """Puts back a mapping's entry as it was before the plan: (kind, key, before); None: absent."""
    _, key, before = entry
    if before is None:
        mapping.pop(key, None)
    else:
        mapping[key] = before
