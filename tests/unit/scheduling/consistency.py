"""Views of a scheduler's memory, to compare it with a recovery from its store, or with itself.

`durable_view` is what a restarted scheduler must rebuild from the store: every field the
store keeps of the live tasks, their current attempts, the workers and the queue. It leaves
out what only memory holds by design — liveness (last_seen, heartbeats, metrics), idle and
unhealthy timers, prefetch, streaks of failures, unsent cancels, drains not yet asked of a
worker — and is the
same whether read from the scheduler that made the changes or from one that recovered.

`memory_view` is everything memory holds but liveness: what a rolled-back operation must
leave exactly as it found it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vahana.core import clock as clocks
from vahana.core import models
from vahana.scheduling import records, scheduler, tables
from vahana.store import codec, sqlite


def _worker(worker: Any) -> tuple[Any, ...]:
    return (
        worker.id,
        worker.pool,
        worker.hostname,
        worker.state,
        worker.capacity,
        worker.max_tasks,
        worker.registered_at,
        worker.allocation_ends_at,
        tuple(sorted(worker.leases.items())),
        worker.quarantine_reason,
    )


def _tables(source: scheduler.Scheduler | tables.Tables) -> tables.Tables:
    return source if isinstance(source, tables.Tables) else source._tables


def durable_view(source: scheduler.Scheduler | tables.Tables) -> dict[str, Any]:
    live = _tables(source)
    return {
        "tasks": {task_id: codec.task_row(task) for task_id, task in live.tasks.items()},
        "queued": sorted(task.id for task in live.queue),
        "attempts": {key: codec.attempt_row(a) for key, a in live.attempts.items()},
        "workers": {worker_id: _worker(w) for worker_id, w in live.workers.items()},
        "seq": live.seq,
        "keys": {k: v for k, v in live.keys.items() if v in live.tasks},
    }


def memory_view(source: scheduler.Scheduler | tables.Tables) -> dict[str, Any]:
    live = _tables(source)
    return {
        **durable_view(live),
        "finished": {task_id: codec.task_row(task) for task_id, task in live.finished.items()},
        "keys": dict(live.keys),
        "workers": {
            worker_id: (_worker(w), w.idle_since, w.unhealthy_since, w.prefetch, w.streak)
            for worker_id, w in live.workers.items()
        },
        "cancels": {w: sorted(leases) for w, leases in live.unsent_cancels.items() if leases},
        "drain": sorted(live.drain_requested),
        "next_due": live.queue.next_due(),
        "usage saved": (dict(live.usage_saved), live.usage_saved_at),
    }


def check_internal(sched: scheduler.Scheduler) -> None:
    """What memory must always hold: the queue holds the live pending tasks (the same
    objects), every lease is of a live task assigned to that worker with that attempt."""
    live = sched._tables
    for task in live.queue:
        assert live.tasks.get(task.id) is task, f"queued task {task.id} is not the live one"
    pending = {t.id for t in live.tasks.values() if t.phase == models.TaskPhase.PENDING}
    assert pending == {t.id for t in live.queue}, "pending tasks and queue differ"
    leased = {}
    for worker in live.workers.values():
        for task_id, attempt in worker.leases.items():
            task = live.tasks[task_id]
            assert (task.worker_id, task.attempt) == (worker.id, attempt), (task_id, worker.id)
            assert task.phase.holds_lease, task_id
            leased[task_id] = worker.id
    for task in live.tasks.values():
        if task.phase.holds_lease:
            assert leased.get(task.id) == task.worker_id, f"task {task.id} leased to nobody"
            assert (task.id, task.attempt) in live.attempts, f"attempt of {task.id} missing"
    for task in live.finished.values():
        assert task.is_final and task.id not in live.tasks


def recovered_view(
    db: Path, settings: records.SchedulerSettings, clock: clocks.Clock
) -> dict[str, Any]:
    """The durable view of a scheduler that recovers from the store file now."""
    store = sqlite.SqliteStore(db)
    try:
        fresh = scheduler.Scheduler(store, settings=settings, clock=clock)
        fresh.recover()
        return durable_view(fresh)
    finally:
        store.close()


def finished_as_stored(sched: scheduler.Scheduler, db: Path) -> None:
    """The finished tasks memory keeps are as the store has them."""
    store = sqlite.SqliteStore(db)
    try:
        for task_id, task in sched._tables.finished.items():
            stored = store.get_task(task_id)
            assert stored is not None and codec.task_row(stored) == codec.task_row(task)
    finally:
        store.close()
