"""Task output over gRPC: workers append it while a task runs (WorkerService.AppendTaskOutput),
clients read it whole or follow it (TaskService.ReadTaskOutput).

A follower waits on the task's feed, woken the moment a chunk of that task is written, so a
line reaches `vahana logs -f` one worker flush (0.2 s) plus a hop later. It also looks again
every FOLLOW_RECHECK seconds, which is how it sees the task end or a retry start.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Awaitable, Callable

from vahana.core import models
from vahana.proto import worker_pb2 as pb
from vahana.store import outputs

READ_CHUNK = 1 << 20
"""Bytes per chunk sent to a reader: bounds the memory one reader holds."""
FOLLOW_RECHECK = 0.25
"""Seconds a follower waits at most before it looks at the task's state again."""


class Feed:
    """Wakes the followers of a task when its output grows."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = collections.defaultdict(set)

    def notify(self, task_id: str) -> None:
        for event in self._waiting.get(task_id, ()):
            event.set()

    async def wait(self, task_id: str, timeout: float) -> None:
        event = asyncio.Event()
        self._waiting[task_id].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiting[task_id].discard(event)
            if not self._waiting[task_id]:
                del self._waiting[task_id]


async def append(
    store: outputs.OutputStore,
    feed: Feed,
    request: pb.AppendTaskOutputRequest,
    current_attempt: Callable[[str], int | None],
) -> pb.AppendTaskOutputResponse:
    """Writes each chunk of a current attempt; answers the size held per chunk (-1: stale)."""
    held: list[int] = []
    for chunk in request.chunks:
        if current_attempt(chunk.task_id) != chunk.attempt:
            held.append(-1)
            continue
        size = await asyncio.to_thread(
            store.append, chunk.task_id, chunk.attempt, chunk.offset, chunk.data
        )
        held.append(size)
        feed.notify(chunk.task_id)
    return pb.AppendTaskOutputResponse(held=held)


async def read(
    store: outputs.OutputStore,
    feed: Feed,
    task: models.TaskRecord,
    *,
    offset: int,
    follow: bool,
    current: Callable[[str], Awaitable[models.TaskRecord]],
) -> AsyncIterator[pb.TaskOutputChunk]:
    """The latest attempt's output from `offset`; following, until the task is final and
    every byte is out. A new attempt (a retry) is followed from its start."""
    attempt = task.attempt
    while True:
        data = await asyncio.to_thread(store.read, task.id, attempt, offset, READ_CHUNK)
        if data:
            yield pb.TaskOutputChunk(task_id=task.id, attempt=attempt, offset=offset, data=data)
            offset += len(data)
            continue
        task = await current(task.id)
        if follow and task.attempt != attempt and task.attempt > 0:
            attempt, offset = task.attempt, 0
            continue
        if not follow or task.is_final:
            for chunk in _ending(store, task, attempt, offset):
                yield chunk
            return
        await feed.wait(task.id, FOLLOW_RECHECK)


def _ending(
    store: outputs.OutputStore, task: models.TaskRecord, attempt: int, offset: int
) -> list[pb.TaskOutputChunk]:
    data = store.ending(task.id, attempt, offset, task.output_tail)
    if offset == 0 and data:
        return [pb.TaskOutputChunk(task_id=task.id, attempt=attempt, data=data, final=True)]
    return [
        pb.TaskOutputChunk(task_id=task.id, attempt=attempt, offset=offset, data=data, final=True)
    ]
