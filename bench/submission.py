"""submission_under_load: heartbeats and dispatch while a 100,000-task submission is committed.

A `vahana server --workers 0` subprocess (SQLite store, heartbeat interval 1 s) serves:
- 300 simulated workers heartbeating every second from random phases (bench/simworkers.py,
  heartbeat mode, its own process): SendHeartbeat call → response, client side;
- one probe worker in pool `probe`, long-polling, and a probe task (pool `probe`) submitted
  as soon as the previous one is done, in this process: SubmitTasks call → the task in the
  probe worker's PollForTask answer (submit → handed out, as a client and a worker see it);
- one SubmitTasks call of 100,000 `true` tasks (pool `bulk`, which no worker serves) from a
  third process (bench/bulk.py), built before the window.
Figures for the window from that call until it returns (every task committed), next to a
3 s window before it: heartbeat p50/p99, dispatch p50/p99, and the scheduler's CPU.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import grpc
from google.protobuf import duration_pb2
from vahana.proto import task_service_pb2 as tpb
from vahana.proto import task_service_pb2_grpc, worker_pb2_grpc
from vahana.proto import worker_pb2 as wpb

from bench.common import Result, log, percentile
from bench.scale import proc_cpu_seconds, server_subprocess
from bench.scenarios import ROOT

BULK_TASKS = 100_000
HEARTBEAT_WORKERS = 300
BASELINE_SECONDS = 3.0


async def probe_dispatch(
    address: str, stop: asyncio.Event, samples: list[tuple[float, float]]
) -> None:
    """Submits one probe task at a time and times it until the probe worker has it."""
    async with grpc.aio.insecure_channel(address) as channel:
        workers = worker_pb2_grpc.WorkerServiceStub(channel)
        tasks = task_service_pb2_grpc.TaskServiceStub(channel)
        worker_id = "probe-worker"
        registration = wpb.RegisterWorkerRequest(
            worker_id=worker_id,
            pool="probe",
            hostname="bench",
            version="bench",
            capabilities=wpb.WorkerCapabilities(max_concurrent_tasks=1),
        )
        await workers.RegisterWorker(registration, timeout=30)

        async def heartbeats() -> None:  # a long poll is no sign of life: a worker heartbeats
            while True:
                reply = await workers.SendHeartbeat(
                    wpb.HeartbeatRequest(worker_id=worker_id, status=wpb.AVAILABLE), timeout=120
                )
                if reply.reregister:
                    await workers.RegisterWorker(registration, timeout=120)
                await asyncio.sleep(0.5)

        beating = asyncio.ensure_future(heartbeats())
        try:
            await _probe_loop(workers, tasks, registration, stop, samples)
        finally:
            beating.cancel()


async def _probe_loop(
    workers: worker_pb2_grpc.WorkerServiceStub,
    tasks: task_service_pb2_grpc.TaskServiceStub,
    registration: wpb.RegisterWorkerRequest,
    stop: asyncio.Event,
    samples: list[tuple[float, float]],
) -> None:
    worker_id = registration.worker_id
    poll = wpb.PollForTaskRequest(
        worker_id=worker_id, max_tasks=1, wait=duration_pb2.Duration(seconds=5)
    )
    number = 0
    while not stop.is_set():
        number += 1
        polling = asyncio.ensure_future(workers.PollForTask(poll, timeout=120))
        started = time.perf_counter()
        await tasks.SubmitTasks(
            tpb.SubmitTasksRequest(
                tasks=[
                    tpb.TaskSubmission(
                        spec=wpb.Task(name=f"probe-{number}", command="true", priority=10),
                        pool="probe",
                    )
                ]
            ),
            timeout=120,
        )
        while True:  # until the probe worker has it, however long and whatever happens
            try:
                reply = await polling
            except grpc.aio.AioRpcError as error:  # given up on while the scheduler stalled
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    await workers.RegisterWorker(registration, timeout=120)
                elif error.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE):
                    raise
                reply = wpb.PollForTaskResponse()
            if reply.has_task:
                break
            polling = asyncio.ensure_future(workers.PollForTask(poll, timeout=120))
        samples.append((started, (time.perf_counter() - started) * 1000))
        task = reply.task
        await workers.BatchUpdateTaskStatus(
            wpb.BatchUpdateTaskStatusRequest(
                worker_id=worker_id,
                updates=[
                    wpb.UpdateTaskStatusRequest(
                        task_id=task.id,
                        worker_id=worker_id,
                        status=wpb.COMPLETED,
                        attempt=task.attempt,
                        exit_code=0,
                    )
                ],
            ),
            timeout=120,
        )
        await asyncio.sleep(0.02)


def _send(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def _line(process: subprocess.Popen[str], send: str | None = None) -> str:
    """Sends `send` (if any), then reads the process's next line."""
    assert process.stdout is not None
    if send is not None:
        _send(process, send)
    return process.stdout.readline().strip()


async def _measure(
    pid: int, address: str, beats: subprocess.Popen[str], bulk: subprocess.Popen[str]
) -> dict[str, Any]:
    stop = asyncio.Event()
    samples: list[tuple[float, float]] = []
    prober = asyncio.ensure_future(probe_dispatch(address, stop, samples))
    _send(beats, "start")
    begin = time.perf_counter()
    await asyncio.sleep(BASELINE_SECONDS)
    cpu_before, go = proc_cpu_seconds(pid), time.perf_counter()
    submitted = json.loads(await asyncio.to_thread(_line, bulk, "go"))
    done = time.perf_counter()
    cpu = proc_cpu_seconds(pid) - cpu_before
    stop.set()
    await prober  # its call under way is waited for: a late answer is a figure too
    calls = json.loads(await asyncio.to_thread(_line, beats, "stop"))["started"]
    return {
        "beats_before": [ms for at, ms in calls if begin <= at < go],
        "beats_during": [ms for at, ms in calls if go <= at <= done],
        "submitted": submitted,
        "window_s": done - go,
        "scheduler_cpu_s": cpu,
        "dispatch_before": [ms for at, ms in samples if at < go],
        "dispatch_during": [ms for at, ms in samples if go <= at <= done],
    }


def submission_under_load(full: bool) -> list[Result]:
    log(
        f"submission under load: {BULK_TASKS:,} tasks in one SubmitTasks call, "
        f"{HEARTBEAT_WORKERS} workers heartbeating every 1 s, a probe task dispatched at a time"
    )
    with server_subprocess(heartbeat_interval=1.0) as (pid, address):
        beats = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.simworkers",
                address,
                f"--workers={HEARTBEAT_WORKERS}",
                "--heartbeat-interval=1",
                "--channels=4",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        bulk = subprocess.Popen(
            [sys.executable, "-m", "bench.bulk", address, f"--tasks={BULK_TASKS}"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            for process, expected in ((beats, "registered"), (bulk, "ready")):
                if (line := _line(process)) != expected:
                    raise RuntimeError(f"bench client not {expected}: {line!r}")
            run = asyncio.run(_measure(pid, address, beats, bulk))
        finally:
            for process in (beats, bulk):
                if process.poll() is None:
                    process.kill()
                process.wait()
    hb_before, hb_during = run["beats_before"], run["beats_during"]
    dispatch_before, dispatch_during = run["dispatch_before"], run["dispatch_during"]
    window = run["window_s"]
    common = {
        "bulk_tasks": BULK_TASKS,
        "submission_seconds": window,
        "committed_tasks_per_s": run["submitted"]["ids"] / window,
        "scheduler_cpu_seconds_during": run["scheduler_cpu_s"],
        "scheduler_cpu_us_per_submitted_task": run["scheduler_cpu_s"] / BULK_TASKS * 1e6,
    }
    return [
        Result(
            "heartbeat_p99_during_submission",
            percentile(hb_during, 0.99),
            "ms",
            detail={
                **common,
                "heartbeats_during": len(hb_during),
                "heartbeat_p50_ms": percentile(hb_during, 0.5),
                "heartbeat_max_ms": max(hb_during, default=float("nan")),
                "measured_with": "SendHeartbeat call → response in the simulated workers' "
                f"process ({HEARTBEAT_WORKERS} workers, 1 s interval), every call made while one "
                f"SubmitTasks call of {BULK_TASKS:,} tasks runs, however late its answer",
            },
            comparison={
                "before_p50_ms": percentile(hb_before, 0.5),
                "before_p99_ms": percentile(hb_before, 0.99),
                "before_window_s": BASELINE_SECONDS,
            },
        ),
        Result(
            "dispatch_p50_during_submission",
            percentile(dispatch_during, 0.5),
            "ms",
            detail={
                **common,
                "samples_during": len(dispatch_during),
                "dispatch_p99_ms": percentile(dispatch_during, 0.99),
                "dispatch_max_ms": max(dispatch_during, default=float("nan")),
                "measured_with": "SubmitTasks of one probe task (pool probe, priority 10) → "
                "the probe worker's PollForTask answer carrying it, in the bench process",
            },
            comparison={
                "before_p50_ms": percentile(dispatch_before, 0.5),
                "before_p99_ms": percentile(dispatch_before, 0.99),
            },
        ),
    ]


SCENARIOS = {"submission_under_load": submission_under_load}
