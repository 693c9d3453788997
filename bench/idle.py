"""Idle workers: what one submitted task costs the scheduler while many workers long-poll.

`idle_workers`: a scheduler with K simulated workers over real gRPC (K = 4, then 200), each
waiting in PollForTask; tasks are submitted one at a time, each once the one before it has
completed (the simulated worker that gets a task reports RUNNING and COMPLETED at once and
polls again). Value: the scheduler's CPU per submission with 200 idle workers; `detail`: the
same with 4 in the same run, submit → COMPLETED p50, and the polls woken per submission.

The simulated workers run in their own process (`python -m bench.idle ADDRESS K`), so the
scheduler process's CPU is its own.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

import grpc
from vahana.proto import worker_pb2 as pb
from vahana.proto import worker_pb2_grpc
from vahana.rpc import wakeups

from bench import scenarios, simworkers
from bench.common import Result, cpu_self, log

POLL_WAIT_S = 30.0
CHANNELS = 4


async def idle_workers(address: str, count: int) -> None:
    """K workers that long-poll and complete each task they get at once; runs until killed."""
    channels = [grpc.aio.insecure_channel(address) for _ in range(CHANNELS)]
    wait = simworkers.duration(POLL_WAIT_S)

    async def work(index: int) -> None:
        stub = worker_pb2_grpc.WorkerServiceStub(channels[index % CHANNELS])
        name = f"idle-{index}"
        await stub.RegisterWorker(
            pb.RegisterWorkerRequest(
                worker_id=name,
                hostname="bench",
                pid=os.getpid(),
                capabilities=pb.WorkerCapabilities(
                    cpu_cores=1, memory_bytes=1 << 30, max_concurrent_tasks=1
                ),
            )
        )
        while True:
            answer = await stub.PollForTask(
                pb.PollForTaskRequest(worker_id=name, max_tasks=1, wait=wait)
            )
            if answer.has_task:
                await stub.BatchUpdateTaskStatus(simworkers.completed(name, [answer.task]))

    await asyncio.gather(*(work(i) for i in range(count)))


async def _all_waiting(wakes: wakeups.Wakeups, count: int, seconds: float = 30.0) -> None:
    """Until `count` polls wait; TimeoutError after `seconds`."""
    async with asyncio.timeout(seconds):
        while wakes.waiting < count:
            await asyncio.sleep(0.001)


async def _one_at_a_time(count: int, workers: int) -> dict[str, float]:
    async with scenarios.scheduler_process(workers=0, tasks_per_worker=1) as process:
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.idle", process.address, str(workers), cwd=scenarios.ROOT
        )
        try:
            await scenarios.wait_for_workers(process.scheduler, workers)
            wakes = process.server.wakeups
            await _all_waiting(wakes, workers)
            woken_before, cpu_before = wakes.woken_by_broadcasts, cpu_self()
            spans = []
            for i in range(count):
                clock = scenarios.PhaseClock()
                process.scheduler.add_listener(clock)
                started = time.perf_counter()
                [task_id] = process.scheduler.submit(scenarios.submissions(1, prefix=f"idle-{i}"))
                await clock.wait_final(task_id, 30)
                spans.append((time.perf_counter() - started) * 1000)
                process.scheduler.remove_listener(clock)
                await _all_waiting(wakes, workers)  # every poll waits again before the next
            cpu = cpu_self() - cpu_before
            woken = wakes.woken_by_broadcasts - woken_before
        finally:
            sim.kill()
            await sim.wait()
    return {
        "cpu_ms": cpu / count * 1000,
        "p50_ms": statistics.median(spans),
        "woken": woken / count,
    }


def idle_workers_figures(full: bool) -> list[Result]:
    count = 400 if full else 100
    runs = {}
    for workers in (4, 200):
        log(f"idle workers: {count} tasks one at a time, {workers} workers long-polling")
        runs[workers] = asyncio.run(_one_at_a_time(count, workers))
    many, few = runs[200], runs[4]
    return [
        Result(
            "idle_workers_submission_cpu",
            many["cpu_ms"],
            "ms CPU per task, 200 idle workers",
            detail={
                "tasks": count,
                "with_4_workers_cpu_ms": few["cpu_ms"],
                "submit_to_completed_p50_ms_200": many["p50_ms"],
                "submit_to_completed_p50_ms_4": few["p50_ms"],
                "polls_woken_per_task_200": many["woken"],
                "polls_woken_per_task_4": few["woken"],
                "measured_with": "getrusage of the scheduler process; simulated workers "
                "in a process of their own",
            },
            comparison={"with_4_idle_workers_cpu_ms": few["cpu_ms"]},
        )
    ]


SCENARIOS = {"idle_workers": idle_workers_figures}

if __name__ == "__main__":
    asyncio.run(idle_workers(sys.argv[1], int(sys.argv[2])))
