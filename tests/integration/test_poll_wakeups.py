"""Idle workers and new tasks, over real gRPC: a task submitted while many workers long-poll
wakes one of them, not all (each woken poll is a dispatch decision on the scheduler's loop); a
task only one waiting worker can run still reaches it, the turn handed on by those that could
not take it; a batch of tasks wakes as many workers as it needs."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from vahana.app import service, settings
from vahana.core import models
from vahana.proto import worker_pb2 as pb
from vahana.proto import worker_pb2_grpc

pytestmark = pytest.mark.integration

POLL_WAIT_S = 25.0
"""Longer than any wait of these tests: a task that reaches its worker came by a wake-up."""


class IdleWorkers:
    """Workers that register, long-poll and report each task they get COMPLETED at once."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = worker_pb2_grpc.WorkerServiceStub(self._channel)
        self._loops: list[asyncio.Task[None]] = []
        self.ran: dict[str, str] = {}
        """task id → the worker that ran it."""

    async def start(self, names: Iterable[str], *, cpu_cores: float = 1.0) -> None:
        for name in names:
            await self._stub.RegisterWorker(
                pb.RegisterWorkerRequest(
                    worker_id=name,
                    hostname="test",
                    pid=os.getpid(),
                    capabilities=pb.WorkerCapabilities(
                        cpu_cores=cpu_cores, memory_bytes=1 << 30, max_concurrent_tasks=1
                    ),
                )
            )
            self._loops.append(asyncio.ensure_future(self._work(name)))

    async def _work(self, name: str) -> None:
        wait = duration_pb2.Duration()
        wait.FromNanoseconds(int(POLL_WAIT_S * 1e9))
        while True:
            answer = await self._stub.PollForTask(
                pb.PollForTaskRequest(worker_id=name, max_tasks=1, wait=wait)
            )
            if not answer.has_task:
                continue
            task = answer.task
            self.ran[task.id] = name
            await self._stub.BatchUpdateTaskStatus(
                pb.BatchUpdateTaskStatusRequest(
                    worker_id=name,
                    updates=[
                        pb.UpdateTaskStatusRequest(
                            task_id=task.id, worker_id=name, status=status, attempt=task.attempt
                        )
                        for status in (pb.RUNNING, pb.COMPLETED)
                    ],
                )
            )

    async def close(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self._channel.close()


@contextlib.asynccontextmanager
async def scheduler(state_dir: Path) -> AsyncIterator[service.SchedulerProcess]:
    config = settings.load(
        {"server.port": 0, "store.state_dir": str(state_dir), "local_pool.workers": 0},
        environ={},
    )
    process = service.SchedulerProcess(config, local_workers=0)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


async def until_waiting(process: service.SchedulerProcess, count: int) -> None:
    """Until `count` polls wait (each has looked for work and found none)."""
    async with asyncio.timeout(20):
        while process.server.wakeups.waiting < count:
            await asyncio.sleep(0.01)


async def until_final(
    process: service.SchedulerProcess, ids: list[str], timeout: float = 10.0
) -> list[models.TaskRecord]:
    """The tasks, once every one of them is final."""
    async with asyncio.timeout(timeout):
        while True:
            tasks = [process.scheduler.get_task(task_id) for task_id in ids]
            if all(task.is_final for task in tasks):
                return tasks
            await asyncio.sleep(0.005)


async def run_to_completion(
    process: service.SchedulerProcess, spec: models.TaskSpec
) -> models.TaskRecord:
    [task] = await until_final(process, process.scheduler.submit([models.Submission(spec)]))
    return task


def test_a_task_submitted_to_40_idle_workers_wakes_one_of_them(tmp_path: Path) -> None:
    async def body() -> None:
        async with scheduler(tmp_path) as process:
            workers = IdleWorkers(process.address)
            await workers.start(f"idle-{i}" for i in range(40))
            try:
                await until_waiting(process, 40)
                for i in range(10):
                    task = await run_to_completion(
                        process, models.TaskSpec(name=f"one-{i}", command="true")
                    )
                    assert task.phase == models.TaskPhase.COMPLETED
                    await until_waiting(process, 40)
                # One per task; waking every idle poll would be 400.
                assert process.server.wakeups.woken_by_broadcasts == 10
            finally:
                await workers.close()

    asyncio.run(body())


def test_a_task_only_the_last_waiting_worker_fits_reaches_it(tmp_path: Path) -> None:
    async def body() -> None:
        async with scheduler(tmp_path) as process:
            workers = IdleWorkers(process.address)
            await workers.start((f"small-{i}" for i in range(20)), cpu_cores=1)
            await until_waiting(process, 20)
            await workers.start(["big"], cpu_cores=8)
            try:
                await until_waiting(process, 21)
                big = models.TaskSpec(
                    name="wide", command="true", resources=models.Resources(cpu_cores=4)
                )
                task = await run_to_completion(process, big)
                assert task.phase == models.TaskPhase.COMPLETED
                assert workers.ran[task.id] == "big"
                # Each small worker looked once and handed the turn on.
                assert process.server.wakeups.woken_by_broadcasts == 21
            finally:
                await workers.close()

    asyncio.run(body())


def test_a_batch_of_tasks_wakes_as_many_workers_as_it_needs(tmp_path: Path) -> None:
    async def body() -> None:
        async with scheduler(tmp_path) as process:
            workers = IdleWorkers(process.address)
            await workers.start(f"idle-{i}" for i in range(30))
            try:
                await until_waiting(process, 30)
                ids = process.scheduler.submit(
                    [
                        models.Submission(models.TaskSpec(name=f"b-{i}", command="true"))
                        for i in range(12)
                    ]
                )
                tasks = await until_final(process, ids, timeout=20)
                assert {task.phase for task in tasks} == {models.TaskPhase.COMPLETED}
                assert len({workers.ran[i] for i in ids}) >= 2  # spread, not one after another
                assert process.server.wakeups.woken_by_broadcasts <= 12
            finally:
                await workers.close()

    asyncio.run(body())
