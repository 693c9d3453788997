"""Which queued task a worker gets next: the queues' fair share, then their quotas.

`take_next` is the one step of `decisions.poll`'s loop that picks a task; it adds the queue
order (`core.fairshare.share`, lowest first) in front of the queue's own (priority, locality,
deadline, age) and keeps out tasks whose queue is at its quota — which may then borrow
capacity that no queue within its quotas could use on this worker.
"""

from __future__ import annotations

from collections.abc import Callable

from vahana.core import fairshare, models
from vahana.scheduling import tables

Accept = Callable[[models.TaskRecord], bool]
Rank = Callable[[models.TaskRecord], int]


def take_next(
    change: tables.Change, worker: models.WorkerRecord, accept: Accept, rank: Rank
) -> models.TaskRecord | None:
    """Pops the task `worker` should run next, or None."""
    live = change.tables
    if live.queue.queue_count <= 1 and not live.quotas:
        return change.take(accept, rank)  # one queue, no quota: the queue's own order alone
    configs, usage = live.queue_configs, live.usage
    factor = live.rank_factor(change.now)
    # Each queue's `fairshare.share` now, from its terms; 0 for a queue that never ran.
    shares = {queue: a * factor + b for queue, (a, b) in live.fresh_terms().items()}

    def order(queue: str) -> float:
        return shares.get(queue, 0.0)

    if not live.quotas:
        return change.take(accept, rank, order)
    pool = worker.pool

    def within(task: models.TaskRecord) -> bool:
        queue = fairshare.queue_of(task)
        return accept(task) and not fairshare.exceeds(
            configs.get(queue), usage.get(queue), pool, task.spec.resources
        )

    task = change.take(within, rank, order)
    if task is not None:
        return task

    def borrowing(task: models.TaskRecord) -> bool:
        config = configs.get(fairshare.queue_of(task))
        return (config is None or config.borrowing) and accept(task)

    # Nothing within its quotas fits this worker: its capacity would stay idle, so a queue
    # past its quota may borrow it (the lender's new work gets the next free slot instead).
    return change.take(borrowing, rank, order)
