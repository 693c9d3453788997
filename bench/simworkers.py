"""Simulated workers over real gRPC: they take tasks and acknowledge them without running them.

Run as its own process (`python -m bench.simworkers ADDRESS --workers K --max-tasks M
--expect N`), so the scheduler process's CPU time is its own. Each simulated worker registers,
then loops: PollForTask(max_tasks=M) → one BatchUpdateTaskStatus carrying RUNNING and COMPLETED
for every task it got. The process exits once N tasks have been acknowledged in total, after
saying TERMINATED for every worker. Prints one JSON line: its own CPU seconds and counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from vahana.proto import worker_pb2 as pb
from vahana.proto import worker_pb2_grpc


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(time.time_ns())
    return stamp


class Tally:
    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.done = 0
        self.polls = 0
        self.batches = 0
        self.finished = asyncio.Event()


async def sim_worker(address: str, worker_id: str, max_tasks: int, tally: Tally) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        await stub.RegisterWorker(pb.RegisterWorkerRequest(
            worker_id=worker_id,
            capabilities=pb.WorkerCapabilities(max_concurrent_tasks=max_tasks),
            hostname="bench", pool="", version="bench", pid=os.getpid(),
        ))
        while not tally.finished.is_set():
            # A short wait: once every task is done, the others notice within it and leave.
            response = await stub.PollForTask(pb.PollForTaskRequest(
                worker_id=worker_id, max_tasks=max_tasks, wait=_duration(0.5)
            ))
            tally.polls += 1
            tasks = ([response.task] if response.has_task else []) + list(response.more_tasks)
            if not tasks:
                continue
            stamp = _now()
            updates = []
            for task in tasks:
                updates.append(pb.UpdateTaskStatusRequest(
                    task_id=task.id, worker_id=worker_id, status=pb.RUNNING,
                    attempt=task.attempt, timestamp=stamp,
                ))
                updates.append(pb.UpdateTaskStatusRequest(
                    task_id=task.id, worker_id=worker_id, status=pb.COMPLETED,
                    attempt=task.attempt, exit_code=0, timestamp=stamp,
                ))
            await stub.BatchUpdateTaskStatus(
                pb.BatchUpdateTaskStatusRequest(worker_id=worker_id, updates=updates)
            )
            tally.batches += 1
            tally.done += len(tasks)
            if tally.done >= tally.expect:
                tally.finished.set()
        await stub.UpdateWorkerStatus(pb.UpdateWorkerStatusRequest(
            worker_id=worker_id, status=pb.TERMINATED, reason="bench done"
        ))


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    tally = Tally(args.expect)
    await asyncio.gather(*(
        sim_worker(args.address, f"sim-{os.getpid()}-{i}", args.max_tasks, tally)
        for i in range(args.workers)
    ))
    return {"done": tally.done, "polls": tally.polls, "batches": tally.batches}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-tasks", type=int, default=1)
    parser.add_argument("--expect", type=int, required=True)
    args = parser.parse_args(argv)
    summary = asyncio.run(main_async(args))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(summary), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
