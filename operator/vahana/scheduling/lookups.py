"""Reads of the store the scheduler makes, as calls for the store's thread (`Pipeline.read`).

Memory answers first; these are for what it no longer holds: tasks finished long ago, names,
idempotency keys of tasks it never saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vahana.core import models
from vahana.scheduling import records
from vahana.store import base


def keys(keys: Sequence[str]) -> Callable[[base.Store], dict[str, str]]:
    return lambda store: store.find_task_ids_by_keys(keys)


def tasks(
    task_ids: Sequence[str],
) -> Callable[[base.Store], dict[str, models.TaskRecord | None]]:
    return lambda store: {task_id: store.get_task(task_id) for task_id in task_ids}


def task(task_id_or_name: str) -> Callable[[base.Store], models.TaskRecord]:
    def find(store: base.Store) -> models.TaskRecord:
        task = store.get_task(task_id_or_name)
        if task is not None:
            return task
        named = store.find_tasks_by_name(task_id_or_name)
        if len(named) > 1:
            raise records.UnknownTask(
                f"{len(named)} tasks are named {task_id_or_name!r}: give the task id"
            )
        if not named:
            raise records.UnknownTask(f"no task with id or name {task_id_or_name!r}")
        return named[0]

    return find
