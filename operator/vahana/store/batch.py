"""What one transaction writes: the records of one or more scheduler plans, merged.

A batch holds the last version of each record it touches, so that the plans of a group commit
(a task assigned, started and finished within a few milliseconds) write each row once.
"""

from __future__ import annotations

import dataclasses

from vahana.core import fairshare, models
from vahana.store import base

AttemptKey = tuple[str, int]


@dataclasses.dataclass
class Batch:
    inserted: dict[str, models.TaskRecord] = dataclasses.field(default_factory=dict)
    """New tasks, by id."""
    updated: dict[str, models.TaskRecord] = dataclasses.field(default_factory=dict)
    """Tasks stored before this batch, in their last version."""
    attempts: dict[AttemptKey, models.AttemptRecord] = dataclasses.field(default_factory=dict)
    workers: dict[str, models.WorkerRecord | None] = dataclasses.field(default_factory=dict)
    """Workers to save, in their last version; None: to delete."""
    usage: dict[str, fairshare.SavedUsage] = dataclasses.field(default_factory=dict)
    """Queues' decayed usage to save, by queue, in its last version."""

    def __bool__(self) -> bool:
        return bool(self.inserted or self.updated or self.attempts or self.workers or self.usage)

    @property
    def rows(self) -> int:
        return (
            len(self.inserted)
            + len(self.updated)
            + len(self.attempts)
            + len(self.workers)
            + len(self.usage)
        )

    def put_task(self, task: models.TaskRecord) -> None:
        """Writes this version of a task: its insert if the batch inserts it, else an update."""
        if task.id in self.inserted:
            self.inserted[task.id] = task
        else:
            self.updated[task.id] = task

    def absorb(self, later: Batch) -> None:
        """Adds a batch decided after this one; its versions win."""
        self.inserted.update(later.inserted)
        for task in later.updated.values():
            self.put_task(task)
        self.attempts.update(later.attempts)
        self.workers.update(later.workers)
        self.usage.update(later.usage)


def write(store: base.Store, batch: Batch) -> None:
    """Writes the batch in one transaction (nothing of it if it fails)."""
    with store.transaction():
        if batch.inserted:
            store.insert_tasks(list(batch.inserted.values()))
        if batch.updated:
            store.update_tasks(list(batch.updated.values()))
        if batch.attempts:
            store.save_attempts(list(batch.attempts.values()))
        saved = [worker for worker in batch.workers.values() if worker is not None]
        if saved:
            store.save_workers(saved)
        deleted = [worker_id for worker_id, worker in batch.workers.items() if worker is None]
        if deleted:
            store.delete_workers(deleted)
        if batch.usage:
            store.save_queue_usage(list(batch.usage.values()))
