"""The WorkerService servicer: workers register, long-poll, report and send heartbeats."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from vahana.core import models
from vahana.core import tokens as token_store
from vahana.proto import worker_pb2 as pb
from vahana.proto import worker_pb2_grpc
from vahana.rpc import checks, convert, outputs, wakeups
from vahana.scheduling import records, scheduler
from vahana.store import base
from vahana.store import outputs as output_store

log = logging.getLogger(__name__)
Request = TypeVar("Request")


async def _refuse_invalid(context: grpc.aio.ServicerContext, check: Callable[[], None]) -> None:
    try:
        check()
    except checks.InvalidArgument as error:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))


class WorkerService(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(
        self,
        sched: scheduler.Scheduler,
        wakes: wakeups.Wakeups,
        *,
        tokens: token_store.TokenStore | None = None,
        output_store: output_store.OutputStore | None = None,
        feed: outputs.Feed | None = None,
    ) -> None:
        """`tokens`: when workers must authenticate, issues each registered worker its token;
        `output_store`: where tasks' streamed output is kept (None: it is not)."""
        self._scheduler = sched
        self._wakes = wakes
        self._tokens = tokens
        self._outputs = output_store
        self._feed = feed or outputs.Feed()

    async def AppendTaskOutput(
        self, request: pb.AppendTaskOutputRequest, context: Any
    ) -> pb.AppendTaskOutputResponse:
        await _refuse_invalid(context, lambda: checks.output(request))
        if self._outputs is None:
            return pb.AppendTaskOutputResponse(held=[-1] * len(request.chunks))

        def current_attempt(task_id: str) -> int | None:
            task = self._scheduler.live_task(task_id)
            return task.attempt if task is not None and not task.is_final else None

        return await outputs.append(self._outputs, self._feed, request, current_attempt)

    async def RegisterWorker(
        self, request: pb.RegisterWorkerRequest, context: Any
    ) -> pb.RegisterWorkerResponse:
        await _refuse_invalid(context, lambda: checks.registration(request))
        try:
            revoked = await self._scheduler.register_async(convert.registration_of(request))
        except records.WorkerQuarantined as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
            raise  # abort raises; this keeps type checkers honest
        response = pb.RegisterWorkerResponse(
            success=True,
            message="registered",
            heartbeat_interval=convert.duration(
                self._scheduler.settings.heartbeat_interval_seconds
            ),
            revoked_tasks=convert.leases_to_pb(revoked),
        )
        if self._tokens is not None:
            issued = self._tokens.issue(request.worker_id)
            response.token = issued.token
            response.token_expires_at.FromNanoseconds(int(issued.expires_at * 1e9))
        return response

    async def PollForTask(
        self, request: pb.PollForTaskRequest, context: Any
    ) -> pb.PollForTaskResponse:
        await _refuse_invalid(context, lambda: checks.poll(request))
        wait = min(convert.seconds_of(request.wait, "wait"), checks.MAX_WAIT_SECONDS)
        deadline = time.monotonic() + wait
        try:
            return await self._long_poll(request, context, deadline)
        finally:
            self._wakes.release(request.worker_id)

    async def _long_poll(
        self, request: pb.PollForTaskRequest, context: Any, deadline: float
    ) -> pb.PollForTaskResponse:
        woken = False
        while True:
            event = self._wakes.arm(request.worker_id, wants_tasks=request.max_tasks > 0)
            try:
                result = await self._call(
                    context, self._scheduler.poll_async(request.worker_id, request.max_tasks)
                )
            except base.StoreUnavailable:
                if not woken:
                    raise
                # Woken as a plan was decided whose commit then failed: this poll's own plan,
                # decided on it, was rolled back with it and handed out nothing. It waits on.
                result = records.PollResult()
            finally:
                self._wakes.settle(request.worker_id)  # a turn it was woken for goes on
            remaining = deadline - time.monotonic()
            # A worker polling with no free slot is woken when one of its leases ends: unless
            # its report already brought the next task, it gets an empty answer at once and
            # polls again with the slots it now has.
            if (
                result
                or remaining <= 0
                or (
                    woken
                    and request.max_tasks == 0
                    and self._scheduler.free_slots(request.worker_id) > 0
                )
            ):
                return _poll_response(result)
            woken = await self._wakes.wait(request.worker_id, event, remaining)

    async def UpdateTaskStatus(
        self, request: pb.UpdateTaskStatusRequest, context: Any
    ) -> pb.UpdateTaskStatusResponse:
        await _refuse_invalid(context, lambda: checks.update(request))
        [result] = await self._scheduler.report_async(
            request.worker_id, [convert.report_of(request)]
        )
        if not result.accepted:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, result.message)
        return pb.UpdateTaskStatusResponse(
            success=True, message=result.message, cancel=result.cancel
        )

    async def BatchUpdateTaskStatus(
        self, request: pb.BatchUpdateTaskStatusRequest, context: Any
    ) -> pb.BatchUpdateTaskStatusResponse:
        await _refuse_invalid(context, lambda: checks.batch(request))
        reports = []
        for item in request.updates:
            reports.append(convert.report_of(item))
        results, handed_out = await self._scheduler.report_and_poll_async(
            request.worker_id, reports, request.max_tasks
        )
        return pb.BatchUpdateTaskStatusResponse(
            tasks=[convert.task_to_pb(task) for task in handed_out.tasks],
            cancel_tasks=convert.leases_to_pb(handed_out.cancels),
            drain=handed_out.drain,
            success=all(r.accepted for r in results),
            results=[
                pb.UpdateResult(
                    task_id=r.task_id,
                    attempt=r.attempt,
                    accepted=r.accepted,
                    message=r.message,
                    cancel=r.cancel,
                )
                for r in results
            ],
        )

    async def StreamTaskStatus(
        self, requests: AsyncIterator[pb.BatchUpdateTaskStatusRequest], context: Any
    ) -> AsyncIterator[pb.BatchUpdateTaskStatusResponse]:
        async for request in requests:
            yield await self.BatchUpdateTaskStatus(request, context)

    async def SendHeartbeat(
        self, request: pb.HeartbeatRequest, context: Any
    ) -> pb.HeartbeatResponse:
        await _refuse_invalid(context, lambda: checks.heartbeat(request))
        result = await self._scheduler.heartbeat_async(
            request.worker_id,
            convert.metrics_of(request.metrics, time.time()),
            [(lease.task_id, lease.attempt) for lease in request.running_tasks],
        )
        return pb.HeartbeatResponse(
            success=not result.reregister,
            message="register again" if result.reregister else "",
            cancel_tasks=convert.leases_to_pb(result.cancels),
            drain=result.drain,
            reregister=result.reregister,
        )

    async def UpdateWorkerStatus(
        self, request: pb.UpdateWorkerStatusRequest, context: Any
    ) -> pb.UpdateWorkerStatusResponse:
        await _refuse_invalid(context, lambda: checks.worker_status(request))
        state = models.WorkerState(pb.WorkerStatus.Name(request.status))
        await self._call(
            context,
            self._scheduler.set_worker_status_async(request.worker_id, state, request.reason),
        )
        return pb.UpdateWorkerStatusResponse(success=True)

    async def ListWorkers(
        self, request: pb.ListWorkersRequest, context: Any
    ) -> pb.ListWorkersResponse:
        state = (
            models.WorkerState(pb.WorkerStatus.Name(request.status))
            if request.status in checks.WORKER_STATUSES and request.status
            else None
        )
        await self._scheduler.settled()  # what it lists is committed
        workers = self._scheduler.list_workers(pool=request.pool, state=state)
        return pb.ListWorkersResponse(workers=[convert.worker_info(w) for w in workers])

    async def _call(self, context: Any, action: Awaitable[Request]) -> Request:
        try:
            return await action
        except records.UnknownWorker as error:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
            raise  # abort raises; this keeps type checkers honest


def _poll_response(result: records.PollResult) -> pb.PollForTaskResponse:
    tasks = [convert.task_to_pb(task) for task in result.tasks]
    response = pb.PollForTaskResponse(
        has_task=bool(tasks),
        more_tasks=tasks[1:],
        cancel_tasks=convert.leases_to_pb(result.cancels),
        drain=result.drain,
    )
    if tasks:
        response.task.CopyFrom(tasks[0])
    return response
