"""Simulated workers over real gRPC: they take tasks and acknowledge them without running them.

Run as its own process (`python -m bench.simworkers ADDRESS --workers K --max-tasks M
--expect N`), so the scheduler process's CPU time is its own. Each simulated worker registers,
then loops: PollForTask(max_tasks=M) → one BatchUpdateTaskStatus carrying RUNNING and COMPLETED
for every task it got. The process exits once N tasks have been acknowledged in total, after
saying TERMINATED for every worker. Prints one JSON line: its own CPU seconds and counts.

`--heartbeat-interval S` switches to heartbeat mode (`heartbeat_scale`): the K workers register
(50 at a time, over a few shared channels), the process prints `registered`, then each worker
sends SendHeartbeat every S seconds from a random phase, and never polls. Latencies (client side,
call → response) are kept between `start` and `stop` lines read from stdin; on `stop` it prints
one JSON line with them (ms) and its CPU seconds, and exits without unregistering; calls under
way are waited for, and `started` lists every call made while measuring with its perf_counter
(the machine's monotonic clock, comparable between processes), answered in time or late.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from vahana.proto import worker_pb2 as pb
from vahana.proto import worker_pb2_grpc


def duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(time.time_ns())
    return stamp


def completed(worker_id: str, tasks: list[pb.Task]) -> pb.BatchUpdateTaskStatusRequest:
    """RUNNING, then COMPLETED (exit 0), for each of the tasks, in one report."""
    stamp = _now()
    return pb.BatchUpdateTaskStatusRequest(
        worker_id=worker_id,
        updates=[
            pb.UpdateTaskStatusRequest(
                task_id=task.id,
                worker_id=worker_id,
                status=status,
                attempt=task.attempt,
                timestamp=stamp,
            )
            for task in tasks
            for status in (pb.RUNNING, pb.COMPLETED)
        ],
    )


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
        await stub.RegisterWorker(
            pb.RegisterWorkerRequest(
                worker_id=worker_id,
                capabilities=pb.WorkerCapabilities(max_concurrent_tasks=max_tasks),
                hostname="bench",
                pool="",
                version="bench",
                pid=os.getpid(),
            )
        )
        while not tally.finished.is_set():
            # A short wait: once every task is done, the others notice within it and leave.
            response = await stub.PollForTask(
                pb.PollForTaskRequest(worker_id=worker_id, max_tasks=max_tasks, wait=duration(0.5))
            )
            tally.polls += 1
            tasks = ([response.task] if response.has_task else []) + list(response.more_tasks)
            if not tasks:
                continue
            await stub.BatchUpdateTaskStatus(completed(worker_id, tasks))
            tally.batches += 1
            tally.done += len(tasks)
            if tally.done >= tally.expect:
                tally.finished.set()
        await stub.UpdateWorkerStatus(
            pb.UpdateWorkerStatusRequest(
                worker_id=worker_id, status=pb.TERMINATED, reason="bench done"
            )
        )


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    tally = Tally(args.expect)
    await asyncio.gather(
        *(
            sim_worker(args.address, f"sim-{os.getpid()}-{i}", args.max_tasks, tally)
            for i in range(args.workers)
        )
    )
    return {"done": tally.done, "polls": tally.polls, "batches": tally.batches}


SLOW_MS = 20.0


class Beats:
    def __init__(self) -> None:
        self.measuring = False
        self.stopping = asyncio.Event()
        self.started: list[tuple[float, float]] = []
        """(perf_counter at the call, ms) of every call made while measuring, however late
        its answer (perf_counter is the machine's monotonic clock: other processes compare)."""
        self.latencies_ms: list[float] = []
        self.slow_at: list[float] = []
        """perf_counter at which each call slower than SLOW_MS started."""
        self.failures = 0
        self.reregister = 0
        self.sent = 0


async def heartbeat_worker(
    stub: worker_pb2_grpc.WorkerServiceStub, worker_id: str, interval: float, beats: Beats
) -> None:
    loop = asyncio.get_running_loop()
    next_at = loop.time() + random.uniform(0, interval)
    request = pb.HeartbeatRequest(
        worker_id=worker_id,
        status=pb.AVAILABLE,
        metrics=pb.WorkerMetrics(cpu_usage=1.0, memory_usage=2.0, load_average=0.1),
    )
    while not beats.stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(beats.stopping.wait(), max(0.0, next_at - loop.time()))
            break
        next_at += interval
        request.metrics.timestamp.CopyFrom(_now())
        started = time.perf_counter()
        measured = beats.measuring
        try:
            response = await stub.SendHeartbeat(request, timeout=30)
        except grpc.aio.AioRpcError:
            beats.failures += 1
            continue
        if measured:
            beats.started.append((started, (time.perf_counter() - started) * 1000))
        if beats.measuring:
            took = (time.perf_counter() - started) * 1000
            beats.latencies_ms.append(took)
            if took > SLOW_MS:
                beats.slow_at.append(started)
            beats.sent += 1
            beats.reregister += response.reregister


async def heartbeat_main(args: argparse.Namespace) -> dict[str, object]:
    channels = [grpc.aio.insecure_channel(args.address) for _ in range(args.channels)]
    stubs = [worker_pb2_grpc.WorkerServiceStub(channel) for channel in channels]
    ids = [f"hb-{os.getpid()}-{i}" for i in range(args.workers)]
    gate = asyncio.Semaphore(50)

    async def register(index: int, worker_id: str) -> None:
        async with gate:
            await stubs[index % len(stubs)].RegisterWorker(
                pb.RegisterWorkerRequest(
                    worker_id=worker_id,
                    capabilities=pb.WorkerCapabilities(max_concurrent_tasks=1),
                    hostname="bench",
                    pool="",
                    version="bench",
                    pid=os.getpid(),
                ),
                timeout=60,
            )

    started = time.perf_counter()
    await asyncio.gather(*(register(i, w) for i, w in enumerate(ids)))
    registration_seconds = time.perf_counter() - started
    print("registered", flush=True)
    beats = Beats()
    loops = [
        asyncio.ensure_future(
            heartbeat_worker(stubs[i % len(stubs)], w, args.heartbeat_interval, beats)
        )
        for i, w in enumerate(ids)
    ]
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cpu_at_start = 0.0
    while line := (await reader.readline()).decode().strip():
        if line == "start":
            beats.measuring = True
            cpu_at_start = _cpu()
        elif line == "lap":  # the latencies so far, then measuring goes on afresh
            print(
                json.dumps(
                    {
                        "latencies_ms": [round(x, 3) for x in beats.latencies_ms],
                        "failures": beats.failures,
                    }
                ),
                flush=True,
            )
            beats.latencies_ms, beats.failures = [], 0
        elif line == "stop":
            break
    beats.measuring = False
    cpu = _cpu() - cpu_at_start
    beats.stopping.set()  # calls under way are waited for: a late answer is a figure too
    await asyncio.gather(*loops, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return {
        "registration_seconds": registration_seconds,
        "heartbeats": beats.sent,
        "failures": beats.failures,
        "reregister": beats.reregister,
        "cpu_seconds_measured": cpu,
        "latencies_ms": [round(x, 3) for x in beats.latencies_ms],
        "started": [(round(at, 4), round(ms, 3)) for at, ms in beats.started],
        # Slow calls bunched in a few 100 ms slots point at pauses (of the scheduler, or of this
        # process), not at a steady per-call cost.
        "slow_calls": len(beats.slow_at),
        "slow_call_slots_100ms": len({int(t * 10) for t in beats.slow_at}),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-tasks", type=int, default=1)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=0.0,
        help="heartbeat mode: seconds between two heartbeats of one worker",
    )
    parser.add_argument("--channels", type=int, default=8, help="heartbeat mode: gRPC channels")
    args = parser.parse_args(argv)
    if args.heartbeat_interval > 0:
        print(json.dumps(asyncio.run(heartbeat_main(args))), flush=True)
        sys.exit(0)
    summary = asyncio.run(main_async(args))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(summary), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
