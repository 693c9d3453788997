"""The TaskService servicer: clients submit, get, list, watch and cancel tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from vahana.core import arrays, bounds, models, validation
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import task_service_pb2_grpc
from vahana.proto import worker_pb2 as pb
from vahana.rpc import convert, outputs
from vahana.scheduling import pacing, records, scheduler
from vahana.store import outputs as output_store

log = logging.getLogger(__name__)
MAX_TASKS_PER_SUBMIT = bounds.TASKS_PER_SUBMIT
MAX_KEY_LENGTH = bounds.KEY_CHARS
_NOWHERE = Path("/nonexistent/vahana-task-output")
"""Without an output store every read finds nothing kept and answers with the status's tail."""
WATCH_BACKLOG = 100_000
"""Changes a watcher may fall behind before its stream is ended."""


class TaskService(task_service_pb2_grpc.TaskServiceServicer):
    """Any client may give each task an idempotency key: a submission sent again with the same
    keys (after a lost answer) gets the same ids back and creates nothing."""

    def __init__(
        self,
        sched: scheduler.Scheduler,
        *,
        output_store: output_store.OutputStore | None = None,
        feed: outputs.Feed | None = None,
    ) -> None:
        self._scheduler = sched
        self._outputs = output_store
        self._feed = feed or outputs.Feed()

    async def ReadTaskOutput(
        self, request: tasks_pb.ReadTaskOutputRequest, context: Any
    ) -> AsyncIterator[pb.TaskOutputChunk]:
        task = await self._find(context, request.id)
        if request.offset < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "offset: must be ≥ 0")
        store = self._outputs or output_store.OutputStore(_NOWHERE, max_bytes=0)
        async for chunk in outputs.read(
            store,
            self._feed,
            task,
            offset=request.offset,
            follow=request.follow,
            current=self._scheduler.get_task_async,
        ):
            yield chunk

    async def SubmitTasks(
        self, request: tasks_pb.SubmitTasksRequest, context: Any
    ) -> tasks_pb.SubmitTasksResponse:
        if len(request.tasks) > MAX_TASKS_PER_SUBMIT:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"tasks: at most {MAX_TASKS_PER_SUBMIT} per call — split the submission",
            )
        submissions: list[models.Submission] = []
        problems: list[str] = []
        pacer = pacing.Pacer()
        for index, item in enumerate(request.tasks):
            await pacer.turn()  # a large submission lets the other calls in meanwhile
            submission = convert.submission_of(item)
            name = submission.spec.name or f"#{index}"
            problems += validation.problems(submission, where=f"tasks[{index}] ({name})")
            problems += _key_problems(submission.key, where=f"tasks[{index}] ({name})")
            submissions.append(submission)
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems[:20]))
        try:
            ids = await self._scheduler.submit_async(submissions)
        except records.RefusedDependencies as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(error.problems[:20]))
        return tasks_pb.SubmitTasksResponse(task_ids=ids)

    async def GetTask(self, request: tasks_pb.GetTaskRequest, context: Any) -> tasks_pb.TaskInfo:
        if request.id and not request.id.endswith("]"):
            await self._scheduler.settled()
            instances = await self._scheduler.get_array_async(request.id)
            if instances:
                return convert.array_info(request.id, arrays.summarize(instances))
        task = await self._find(context, request.id)
        return convert.task_info(task, self._scheduler.pending_reason(task))

    async def ListTasks(
        self, request: tasks_pb.ListTasksRequest, context: Any
    ) -> tasks_pb.ListTasksResponse:
        try:
            after = _cursor(request.page_token)
        except ValueError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "page_token: not one this server gave — send a response's next_page_token, "
                "or none for the first page",
            )
            raise
        size = bounds.LIST_PAGE_TASKS
        if 0 < request.limit < size:
            size = request.limit
        # One more than the page holds tells whether there is a next page.
        tasks = await self._scheduler.list_tasks_async(
            phase=_phase(request.status),
            namespace=request.namespace or None,
            ids=list(request.ids),
            limit=size + 1,
            after_seq=after,
        )
        answer = tasks_pb.ListTasksResponse()
        room = bounds.LIST_PAGE_BYTES
        for task in tasks[:size]:
            info = convert.task_info(task, self._scheduler.pending_reason(task))
            room -= info.ByteSize() + 8  # the field's tag and length
            if room < 0 and answer.tasks:
                break
            answer.tasks.append(info)
            answer.next_page_token = str(task.seq)
        if len(answer.tasks) == len(tasks):
            answer.next_page_token = ""  # nothing after the last task sent
        return answer

    async def WatchTasks(
        self, request: tasks_pb.WatchTasksRequest, context: Any
    ) -> AsyncIterator[tasks_pb.TaskInfo]:
        wanted = set(request.ids)
        # Bounded: a watcher that cannot keep up is ended, not given all of memory.
        changes: asyncio.Queue[tasks_pb.TaskInfo | None] = asyncio.Queue(WATCH_BACKLOG)

        def on_change(task: models.TaskRecord) -> None:
            if wanted and task.id not in wanted:
                return
            try:
                changes.put_nowait(convert.task_info(task, self._scheduler.pending_reason(task)))
            except asyncio.QueueFull:
                self._scheduler.remove_listener(on_change)
                changes.get_nowait()
                changes.put_nowait(None)  # the end-of-stream mark, in the last place

        self._scheduler.add_listener(on_change)
        # Says "listening" at once: a client may then read a list, knowing no later change
        # will be missed (`vahana get tasks --watch`).
        await context.send_initial_metadata((("vahana-watching", "1"),))
        try:
            unfinished = set()
            for task in await self._scheduler.list_tasks_async(ids=list(wanted)) if wanted else []:
                if not task.is_final:
                    unfinished.add(task.id)
                yield convert.task_info(task, self._scheduler.pending_reason(task))
            if request.until_final and wanted and not unfinished:
                return
            while True:
                info = await changes.get()
                if info is None:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"watch fell {WATCH_BACKLOG} changes behind — watch fewer tasks or "
                        "read faster, then watch again",
                    )
                    return
                yield info
                if info.status in (
                    pb.COMPLETED,
                    pb.FAILED,
                    pb.CANCELLED,
                    pb.TIMED_OUT,
                    pb.UPSTREAM_FAILED,
                ):
                    unfinished.discard(info.id)
                    if request.until_final and wanted and not unfinished:
                        return
                elif info.id in wanted:
                    unfinished.add(info.id)
        finally:
            with contextlib.suppress(ValueError):  # removed already on overflow
                self._scheduler.remove_listener(on_change)

    async def CancelTask(
        self, request: tasks_pb.CancelTaskRequest, context: Any
    ) -> tasks_pb.CancelTaskResponse:
        if len(request.reason) > bounds.REASON_CHARS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"reason: at most {bounds.REASON_CHARS} characters, got {len(request.reason)}",
            )
        if request.id and not request.id.endswith("]"):
            await self._scheduler.settled()
            instances = await self._scheduler.get_array_async(request.id)
            if instances:  # an array: every instance not final yet is cancelled
                live = [t for t in instances if not t.is_final]
                for task in live:
                    await self._scheduler.cancel_async(task.id, request.reason)
                # As for one task, the phase after the cancel (running instances stay RUNNING
                # until their workers stop them).
                await self._scheduler.settled()
                now = await self._scheduler.get_array_async(request.id)
                phase = arrays.summarize(now or instances).phase
                return tasks_pb.CancelTaskResponse(
                    cancelled=bool(live), status=pb.TaskStatus.Value(phase.value)
                )
        await self._find(context, request.id)
        cancelled, phase = await self._scheduler.cancel_async(request.id, request.reason)
        return tasks_pb.CancelTaskResponse(
            cancelled=cancelled, status=pb.TaskStatus.Value(phase.value)
        )

    async def _find(self, context: Any, task_id: str) -> models.TaskRecord:
        if not task_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "id: required — give a task id or name"
            )
        await self._scheduler.settled()  # what it answers is committed
        try:
            return await self._scheduler.get_task_async(task_id)
        except records.AmbiguousTaskName as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
            raise
        except records.UnknownTask as error:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
            raise


def _key_problems(key: str, *, where: str) -> list[str]:
    """The idempotency key any client may send: bounded, and storable in every store."""
    if len(key) > MAX_KEY_LENGTH:
        return [f"{where}.key: at most {MAX_KEY_LENGTH} characters, got {len(key)}"]
    if "\x00" in key:
        return [f"{where}.key: must not contain NUL bytes"]
    return []


def _cursor(token: str) -> int:
    """A page token is the `seq` of the last task sent; raises ValueError for any other text."""
    if not token:
        return 0
    if not token.isdecimal() or len(token) > 19:
        raise ValueError(token)
    return int(token)


def _phase(status: int) -> models.TaskPhase | None:
    if not status or status not in pb.TaskStatus.values():
        return None
    return models.TaskPhase(pb.TaskStatus.Name(status))
