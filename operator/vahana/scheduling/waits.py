"""Dependents in memory: held out of the queue until their upstream tasks end.

A dependent with an upstream task not ended is PENDING but not queued: `Tables.waiting` counts
its open upstream tasks and `Tables.dependents` lists it under each of them, so dispatch never
looks at it, and the end of an upstream task touches only its own dependents. When the count
reaches zero it is queued; when an upstream ends in a way its condition refuses, it ends
UPSTREAM_FAILED (and so, in turn, do its own afterok dependents). Every change goes through
the operation's `tables.Change`, so it is committed with the end that caused it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from vahana.core import dependencies, models
from vahana.scheduling import tables

Failed = tuple[models.TaskRecord, str]
"""A dependent that must end UPSTREAM_FAILED, and its message."""


def lookup_in(
    live: tables.Tables, stored: Mapping[str, models.TaskRecord | None]
) -> Callable[[str], models.TaskRecord | None]:
    """Finds an upstream task in memory, else among those read from the store."""
    return lambda task_id: live.task(task_id) or stored.get(task_id)


def hold_or_queue(
    change: tables.Change,
    task: models.TaskRecord,
    lookup: Callable[[str], models.TaskRecord | None],
) -> str:
    """A new (or recovered) PENDING task: queued if it waits for nothing; held while an
    upstream task is open. Returns the UPSTREAM_FAILED message if one already ended in a way
    that keeps it from running (the caller ends it), else ""."""
    if not task.upstream:
        change.push(task)
        return ""
    standing = dependencies.readiness(task, lookup)
    if standing.failed is not None or standing.failed_name:
        return dependencies.failure_message(standing.failed, standing.failed_name)
    if standing.ready:
        change.push(task)
        return ""
    change.set_waiting(task.id, standing.unfinished)
    rule = dependencies.conditions(task.spec)
    for name, ids in task.upstream.items():
        for upstream_id in ids:
            upstream = lookup(upstream_id)
            if upstream is not None and not upstream.is_final:
                change.add_dependents(upstream_id, ((task.id, rule[name]),))
    return ""


def ended(change: tables.Change, task: models.TaskRecord) -> list[Failed]:
    """A task ended: it waits no more, and its dependents hear of it — queued when it was
    the last they waited for; returned to be ended when its end keeps them from running."""
    live = change.tables
    if task.id in live.waiting:
        change.set_waiting(task.id, None)
    failed: list[Failed] = []
    for dependent_id, condition in change.pop_dependents(task.id):
        left = live.waiting.get(dependent_id)
        dependent = live.tasks.get(dependent_id)
        if left is None or dependent is None:
            continue  # it ended already (cancelled, or another upstream failed)
        if dependencies.blocks(condition, task):
            change.set_waiting(dependent_id, None)
            failed.append((change.edit_task(dependent), dependencies.failure_message(task)))
        elif left > 1:
            change.set_waiting(dependent_id, left - 1)
            change.plan.emit(dependent)  # its pending reason may name one dependency fewer
        else:
            change.set_waiting(dependent_id, None)
            change.push(dependent)
            change.plan.emit(dependent)
            change.plan.wake.add(None)
    return failed


def pending_reason(live: tables.Tables, task: models.TaskRecord) -> str:
    """ "waiting for b, c" for a held dependent; "" for any other task."""
    if task.id not in live.waiting:
        return ""
    waiting = [
        name
        for name, ids in task.upstream.items()
        if any(upstream_id in live.tasks for upstream_id in ids)
    ]
    return dependencies.reason(waiting)
