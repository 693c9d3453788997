"""The pending-task queue: priority, then deadline, then age; indexed by task shape.

Tasks of the same shape (pool, resources, labels, timeout) fit exactly the same workers, so
each shape keeps its own heap and a dispatch looks only at the head of each shape: the cost
grows with the number of distinct shapes, not with the number of queued tasks.
Tasks waiting out a retry backoff sit in a separate heap until their time comes.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Iterator

from vahana.core import fairshare, models

ShapeKey = tuple[object, ...]
OrderKey = tuple[int, float, int]
DepthKey = tuple[str, int]
"""(pool, priority): how the queue's depth is counted for people (the dashboard)."""


def order_key(task: models.TaskRecord) -> OrderKey:
    deadline = task.spec.deadline if task.spec.deadline is not None else math.inf
    return (-task.spec.priority, deadline, task.seq)


def shape_key(task: models.TaskRecord) -> ShapeKey:
    need = task.spec.resources
    return (
        fairshare.queue_of(task),
        task.pool,
        need.shape(),
        tuple(sorted(need.preferred_labels.items())),
        task.spec.timeout_seconds,
    )


@dataclasses.dataclass(slots=True)
class _Shape:
    key: ShapeKey
    example: models.TaskRecord
    """Any task of this shape: its resources, pool, timeout stand for all of them."""
    queue: str
    """The queue of its tasks (`fairshare.queue_of`)."""
    heap: list[tuple[OrderKey, int, str]] = dataclasses.field(default_factory=list)


class TaskQueue:
    """Pending tasks ready to dispatch, plus those delayed by a retry backoff.

    Heap entries carry the token of the push that made them; removing or re-pushing a task
    changes its token, so stale entries are recognised and dropped when they reach the top.
    """

    def __init__(self) -> None:
        self._shapes: dict[ShapeKey, _Shape] = {}
        self._tasks: dict[str, models.TaskRecord] = {}
        self._tokens: dict[str, int] = {}
        self._next_token = 0
        self._delayed: list[tuple[float, int, str]] = []
        self._queues: dict[str, dict[ShapeKey, _Shape]] = {}
        """The shapes of `_shapes` by queue."""
        self._depth: dict[DepthKey, int] = {}
        """Queued tasks by (pool, priority), kept as tasks come and go: reading it costs
        nothing per queued task."""

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __iter__(self) -> Iterator[models.TaskRecord]:
        return iter(self._tasks.values())

    @property
    def queue_count(self) -> int:
        """Queues with ready tasks (or shapes not yet found empty)."""
        return len(self._queues)

    def push(self, task: models.TaskRecord, now: float) -> None:
        self._next_token += 1
        token = self._next_token
        replaced = self._tasks.get(task.id)
        if replaced is not None:
            self._count(replaced, -1)
        self._count(task, 1)
        self._tasks[task.id] = task
        self._tokens[task.id] = token
        if task.not_before > now:
            heapq.heappush(self._delayed, (task.not_before, token, task.id))
        else:
            self._push_ready(task, token)

    def remove(self, task_id: str) -> models.TaskRecord | None:
        self._tokens.pop(task_id, None)
        removed = self._tasks.pop(task_id, None)
        if removed is not None:
            self._count(removed, -1)
        return removed

    def depths(self) -> dict[DepthKey, int]:
        """How many tasks are queued (ready or in a backoff) by (pool, priority)."""
        return dict(self._depth)

    def promote_due(self, now: float) -> int:
        """Moves tasks whose backoff has passed into the ready heaps; returns how many."""
        moved = 0
        while self._delayed and self._delayed[0][0] <= now:
            _, token, task_id = heapq.heappop(self._delayed)
            if self._tokens.get(task_id) == token:
                self._push_ready(self._tasks[task_id], token)
                moved += 1
        return moved

    def next_due(self) -> float | None:
        """When the earliest delayed task becomes ready, if any is delayed."""
        while self._delayed and self._tokens.get(self._delayed[0][2]) != self._delayed[0][1]:
            heapq.heappop(self._delayed)
        return self._delayed[0][0] if self._delayed else None

    def shapes(self) -> list[models.TaskRecord]:
        """One example task per shape with ready tasks."""
        return [shape.example for shape in self._shapes.values() if self._head(shape) is not None]

    def take(
        self,
        accept: Callable[[models.TaskRecord], bool],
        rank: Callable[[models.TaskRecord], int],
        order: Callable[[str], float] | None = None,
    ) -> models.TaskRecord | None:
        """Pops the best ready task whose shape `accept` allows.

        Order: `order` of the task's queue (its fair share: lower first), then priority, then
        `rank` (locality: higher first), then deadline, then age. Queues are looked at in
        their order and the first with a task `accept` allows gives it, so a dispatch looks
        at the shapes of one queue when that queue's head fits.
        """
        if order is None or len(self._queues) <= 1:
            return self._take_from(self._shapes, accept, rank)
        first = min(self._queues, key=order)  # its head fits, mostly: no need to sort them all
        task = self._take_from(self._queues[first], accept, rank)
        if task is not None:
            return task
        for queue in sorted(self._queues, key=order):
            shapes = self._queues.get(queue) if queue != first else None
            task = self._take_from(shapes, accept, rank) if shapes is not None else None
            if task is not None:
                return task
        return None

    def _take_from(
        self,
        shapes: dict[ShapeKey, _Shape],
        accept: Callable[[models.TaskRecord], bool],
        rank: Callable[[models.TaskRecord], int],
    ) -> models.TaskRecord | None:
        best: tuple[tuple[int, int, float, int], _Shape] | None = None
        empty: list[ShapeKey] = []
        for shape in shapes.values():
            head = self._head(shape)
            if head is None:
                empty.append(shape.key)
                continue
            if not accept(shape.example):
                continue
            priority, deadline, seq = head[0]
            candidate = (priority, -rank(shape.example), deadline, seq)
            if best is None or candidate < best[0]:
                best = (candidate, shape)
        for key in empty:
            self._drop_shape(key)
        if best is None:
            return None
        _, _, task_id = heapq.heappop(best[1].heap)
        self._tokens.pop(task_id)
        task = self._tasks.pop(task_id)
        self._count(task, -1)
        return task

    def _drop_shape(self, key: ShapeKey) -> None:
        shape = self._shapes.pop(key)
        in_queue = self._queues[shape.queue]
        del in_queue[key]
        if not in_queue:
            del self._queues[shape.queue]

    def _count(self, task: models.TaskRecord, change: int) -> None:
        key = (task.pool, task.spec.priority)
        left = self._depth.get(key, 0) + change
        if left:
            self._depth[key] = left
        else:
            del self._depth[key]

    def _push_ready(self, task: models.TaskRecord, token: int) -> None:
        key = shape_key(task)
        shape = self._shapes.get(key)
        if shape is None:
            queue = key[0]
            assert isinstance(queue, str)
            shape = self._shapes[key] = _Shape(key, task, queue)
            self._queues.setdefault(queue, {})[key] = shape
        heapq.heappush(shape.heap, (order_key(task), token, task.id))

    def _head(self, shape: _Shape) -> tuple[OrderKey, int, str] | None:
        heap = shape.heap
        while heap and self._tokens.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0] if heap else None
