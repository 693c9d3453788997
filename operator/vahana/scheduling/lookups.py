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


AMBIGUOUS_SHOWN = 5
"""Tasks of one name listed by id when the name alone does not say which."""


def task(task_id_or_name: str) -> Callable[[base.Store], models.TaskRecord]:
    def find(store: base.Store) -> models.TaskRecord:
        task = store.get_task(task_id_or_name)
        if task is not None:
            return task
        named = store.find_tasks_by_name(task_id_or_name)
        if len(named) > 1:
            shown = ", ".join(f"{t.id} ({t.phase.value})" for t in named[:AMBIGUOUS_SHOWN])
            more = (
                f" and {len(named) - AMBIGUOUS_SHOWN} more" if len(named) > AMBIGUOUS_SHOWN else ""
            )
            raise records.AmbiguousTaskName(
                f"{len(named)} tasks are named {task_id_or_name!r}: {shown}{more} — give the "
                "task id"
            )
        if not named:
            raise records.UnknownTask(f"no task with id or name {task_id_or_name!r}")
        return named[0]

    return find


def array(name: str) -> Callable[[base.Store], list[models.TaskRecord]]:
    """The instances of the newest array named `name` (those of one submission: their keys
    share all but the index), in index order; empty if there is none."""

    def find(store: base.Store) -> list[models.TaskRecord]:
        found = [t for t in store.find_array_instances(name) if t.spec.array == name]
        if not found:
            return []
        run = found[-1].key.rpartition("/")[0]
        return sorted(
            (t for t in found if t.key.rpartition("/")[0] == run), key=lambda t: t.spec.index
        )

    return find


Named = dict[tuple[str, str], tuple[bool, list[models.TaskRecord]]]
"""(namespace, name) → (is an array, its task or its newest array's instances by index)."""


def named(wanted: Sequence[tuple[str, str]]) -> Callable[[base.Store], Named]:
    """The tasks submitted before that dependencies name: the newest task of that name in
    the namespace, or the newest array's instances, whichever was submitted last."""

    def find(store: base.Store) -> Named:
        found: Named = {}
        for namespace, name in wanted:
            single = [t for t in store.find_tasks_by_name(name) if t.namespace == namespace]
            instances = [
                t
                for t in store.find_array_instances(name)
                if t.spec.array == name and t.namespace == namespace
            ]
            newest_array = _newest_run(instances)
            if single and (not newest_array or single[-1].seq > newest_array[-1].seq):
                found[(namespace, name)] = (False, [single[-1]])
            elif newest_array:
                found[(namespace, name)] = (True, sorted(newest_array, key=lambda t: t.spec.index))
        return found

    return find


def _newest_run(instances: list[models.TaskRecord]) -> list[models.TaskRecord]:
    """The instances (in submission order) of the newest array among them: from the newest
    back until an index comes twice (or the key's run changes)."""
    run: list[models.TaskRecord] = []
    indices: set[int] = set()
    for task in reversed(instances):
        prefix = task.key.rpartition("/")[0]
        if task.spec.index in indices or (run and run[-1].key.rpartition("/")[0] != prefix):
            break
        indices.add(task.spec.index)
        run.append(task)
    return sorted(run, key=lambda t: t.seq)
