"""The benchmark's scenarios. Each drives the real code and returns figures, never verdicts.

- end_to_end_throughput / scheduler_cpu_per_task: a real SchedulerProcess (SQLite store in a
  temp dir, gRPC server on loopback, LocalPool of real `vahana_worker` subprocesses) runs N
  `true` tasks; compared with xargs running the same N `bash -c true` at the same parallelism.
- dispatch_latency: the same process with idle workers; one task at a time, timed by the
  scheduler's own listener (submit → ASSIGNED → RUNNING → final).
- scheduler_only_*: no task processes. "core" calls the Scheduler object directly (SQLite store,
  and a null store for the logic alone); "grpc" serves it over real gRPC to simulated workers in
  another process (bench/simworkers.py) that acknowledge tasks without running them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from vahana.app import service
from vahana.app import settings as settings_module
from vahana.core import fairshare, models
from vahana.scheduling import records
from vahana.scheduling import scheduler as scheduler_module
from vahana.store import sqlite

from bench.common import Result, cpu_children, cpu_self, log, percentile

ROOT = Path(__file__).resolve().parent.parent
FINAL_TIMEOUT = 600.0
"""Seconds a run may take before the benchmark gives up on it (a figure is then missing)."""
STALL_SECONDS = 2.0
"""A gap this long between two tasks finishing is a stall: the workers' logs are kept."""


def longest_gap(times: Sequence[float]) -> float:
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def submissions(
    count: int, command: str = "true", prefix: str = "bench", queues: int = 0
) -> list[models.Submission]:
    """`count` tasks; with `queues`, spread over queues q0…q<queues-1> in turn."""
    return [
        models.Submission(
            models.TaskSpec(
                name=f"{prefix}-{i}", command=command, queue=f"q{i % queues}" if queues else ""
            )
        )
        for i in range(count)
    ]


def make_settings(
    state_dir: str, *, workers: int, tasks_per_worker: int
) -> settings_module.Settings:
    return settings_module.load(
        {
            "server.port": 0,
            "metrics.port": 0,  # as in `vahana run`; a port held elsewhere cannot fail the run
            "store.state_dir": state_dir,
            "local_pool.workers": workers,
            "local_pool.tasks_per_worker": tasks_per_worker,
        },
        environ={},  # VAHANA_* variables of the caller's shell must not change the figures
    )


async def wait_for_workers(
    sched: scheduler_module.Scheduler, count: int, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while len(sched.list_workers()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(sched.list_workers())} of {count} workers registered")
        await asyncio.sleep(0.02)


class FinalCounter:
    """A task listener counting distinct tasks that reached a final phase."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.final: set[str] = set()
        self.times: list[float] = []
        self.not_completed = 0
        self.requeued = 0
        """Attempts that ended without finishing the task (handed back unstarted, lost...)."""
        self.done = asyncio.Event()

    def __call__(self, task: models.TaskRecord) -> None:
        if task.phase == models.TaskPhase.PENDING and task.attempt > 0:
            self.requeued += 1
        if task.is_final and task.id not in self.final:
            self.final.add(task.id)
            self.times.append(time.perf_counter())
            if task.phase != models.TaskPhase.COMPLETED:
                self.not_completed += 1
            if len(self.final) >= self.expect:
                self.done.set()


@contextlib.asynccontextmanager
async def scheduler_process(*, workers: int, tasks_per_worker: int) -> Any:
    """A started SchedulerProcess in a temp dir, its workers registered; stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="vahana-bench-") as tmp:
        process = service.SchedulerProcess(
            make_settings(tmp, workers=workers, tasks_per_worker=tasks_per_worker),
            local_workers=workers,  # 0 means none here, not "one per CPU"
        )
        started = time.perf_counter()
        try:
            await process.start()
            await wait_for_workers(process.scheduler, workers)
            process.startup_seconds = time.perf_counter() - started  # type: ignore[attr-defined]
            yield process
        finally:
            stopping = time.perf_counter()
            await process.stop()
            process.stop_seconds = time.perf_counter() - stopping  # type: ignore[attr-defined]


# -- 1 and 3: end to end ---------------------------------------------------------------------


def xargs_floor(count: int, parallel: int) -> float:
    """Seconds xargs takes to run `bash -c true` `count` times, `parallel` at once."""
    started = time.perf_counter()
    subprocess.run(
        ["bash", "-c", f"seq {count} | xargs -P {parallel} -I{{}} bash -c true"],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


async def _end_to_end(count: int, workers: int, tasks_per_worker: int) -> dict[str, float]:
    children_before = cpu_children()
    async with scheduler_process(workers=workers, tasks_per_worker=tasks_per_worker) as process:
        counter = FinalCounter(count)
        process.scheduler.add_listener(counter)
        cpu_before = cpu_self()
        started = time.perf_counter()
        process.scheduler.submit(submissions(count))
        submitted = time.perf_counter()
        await asyncio.wait_for(counter.done.wait(), FINAL_TIMEOUT)
        elapsed = time.perf_counter() - started
        cpu = cpu_self() - cpu_before
        process.scheduler.remove_listener(counter)
        gap = longest_gap([started, *counter.times])
        kept_logs = ""
        if gap > STALL_SECONDS:  # keep the workers' logs of a stalled run to look at later
            kept_logs = tempfile.mkdtemp(prefix="vahana-bench-stall-logs-")
            shutil.copytree(process.settings.state_dir / "logs", kept_logs, dirs_exist_ok=True)
    return {
        "seconds": elapsed,
        "tasks_per_s": count / elapsed,
        "submit_seconds": submitted - started,
        "scheduler_cpu_seconds": cpu,
        "scheduler_cpu_us_per_task": cpu / count * 1e6,
        "scheduler_cpu_share_of_one_core": cpu / elapsed,
        # Workers are waited for when the pool closes: their whole life, start-up included,
        # plus every `bash -c true` they ran.
        "workers_cpu_us_per_task": (cpu_children() - children_before) / count * 1e6,
        "not_completed": counter.not_completed,
        "requeued": counter.requeued,
        "longest_gap_between_finals_s": gap,
        "stall_logs": kept_logs,
        "startup_seconds": process.startup_seconds,  # type: ignore[attr-defined]
        "stop_seconds": process.stop_seconds,  # type: ignore[attr-defined]
    }


def end_to_end(count: int, *, variants: Sequence[int] = (1, 2), workers: int = 4) -> list[Result]:
    results: list[Result] = []
    cpu_rows: list[Result] = []
    for tasks_per_worker in variants:
        parallel = workers * tasks_per_worker
        log(f"end to end: {count} tasks, {workers} workers × {tasks_per_worker} slots")
        run = asyncio.run(_end_to_end(count, workers, tasks_per_worker))
        log(f"xargs -P {parallel}: {count} × bash -c true")
        floor_seconds = xargs_floor(count, parallel)
        floor_rate = count / floor_seconds
        suffix = "" if tasks_per_worker == 1 else f"_tpw{tasks_per_worker}"
        results.append(
            Result(
                f"end_to_end_throughput{suffix}",
                run["tasks_per_s"],
                "tasks/s",
                detail={
                    "tasks": count,
                    "workers": workers,
                    "tasks_per_worker": tasks_per_worker,
                    "seconds": run["seconds"],
                    "submit_seconds": run["submit_seconds"],
                    "not_completed": run["not_completed"],
                    "requeued": run["requeued"],
                    "longest_gap_between_finals_s": run["longest_gap_between_finals_s"],
                    **({"stall_logs": run["stall_logs"]} if run["stall_logs"] else {}),
                    "startup_seconds": run["startup_seconds"],
                    "stop_seconds": run["stop_seconds"],
                },
                comparison={
                    "xargs_tasks_per_s": floor_rate,
                    "xargs_seconds": floor_seconds,
                    "xargs_command": f"seq {count} | xargs -P {parallel} -I{{}} bash -c true",
                    "ratio_vahana_over_xargs": run["tasks_per_s"] / floor_rate,
                },
            )
        )
        cpu_rows.append(
            Result(
                f"scheduler_cpu_per_task{suffix}",
                run["scheduler_cpu_us_per_task"],
                "µs/task",
                detail={
                    "tasks": count,
                    "tasks_per_worker": tasks_per_worker,
                    "scheduler_cpu_seconds": run["scheduler_cpu_seconds"],
                    "scheduler_cpu_share_of_one_core": run["scheduler_cpu_share_of_one_core"],
                    "measured_with": "getrusage(RUSAGE_SELF) of the scheduler "
                    "process, submit → all final",
                },
                comparison={"workers_and_tasks_cpu_us_per_task": run["workers_cpu_us_per_task"]},
            )
        )
    return results + cpu_rows


# -- 2: dispatch latency ---------------------------------------------------------------------


class PhaseClock:
    """A task listener noting when each task first reached each phase (perf_counter)."""

    def __init__(self) -> None:
        self.times: dict[str, dict[models.TaskPhase, float]] = {}
        self._finished: set[str] = set()
        self._final = asyncio.Event()

    def __call__(self, task: models.TaskRecord) -> None:
        phases = self.times.setdefault(task.id, {})
        phases.setdefault(task.phase, time.perf_counter())
        if task.is_final:
            self._finished.add(task.id)
            self._final.set()

    async def wait_final(self, task_id: str, timeout: float) -> None:
        """Until the task is final (it may be already)."""
        async with asyncio.timeout(timeout):
            while task_id not in self._finished:
                self._final.clear()
                await self._final.wait()


async def _dispatch_latency(samples: int, workers: int) -> dict[str, Any]:
    async with scheduler_process(workers=workers, tasks_per_worker=1) as process:
        sched = process.scheduler
        clock = PhaseClock()
        sched.add_listener(clock)
        await asyncio.sleep(0.5)  # every worker has its long poll open
        ids = []
        for i in range(samples):
            submitted = time.perf_counter()
            # As the TaskService's SubmitTasks does: the event loop goes on while it commits.
            [task_id] = await sched.submit_async(submissions(1, prefix=f"latency-{i}"))
            clock.times[task_id][models.TaskPhase.PENDING] = submitted
            await clock.wait_final(task_id, 60)
            ids.append(task_id)
            await asyncio.sleep(0.005)  # let the worker that ran it re-open its poll
        sched.remove_listener(clock)

    def span(start: models.TaskPhase, end: models.TaskPhase | None) -> list[float]:
        out = []
        for task_id in ids:
            phases = clock.times[task_id]
            stop = phases.get(end) if end else max(phases.values())
            if stop is not None:
                out.append((stop - phases[start]) * 1000)
        return out

    P, A, R = models.TaskPhase.PENDING, models.TaskPhase.ASSIGNED, models.TaskPhase.RUNNING
    return {
        "to_running": span(P, R),
        "to_assigned": span(P, A),
        "assigned_to_running": span(A, R),
        "to_final": span(P, None),
    }


def dispatch_latency(samples: int, workers: int = 4) -> list[Result]:
    log(f"dispatch latency: {samples} tasks one at a time, {workers} idle workers")
    spans = asyncio.run(_dispatch_latency(samples, workers))
    run = spans["to_running"]
    return [
        Result(
            "dispatch_latency",
            percentile(run, 0.5),
            "ms (p50)",
            detail={
                "samples": len(run),
                "workers": workers,
                "submit_to_running_p50_ms": percentile(run, 0.5),
                "submit_to_running_p99_ms": percentile(run, 0.99),
                "submit_to_running_max_ms": max(run),
                "submit_to_assigned_p50_ms": percentile(spans["to_assigned"], 0.5),
                "submit_to_assigned_p99_ms": percentile(spans["to_assigned"], 0.99),
                "assigned_to_running_p50_ms": percentile(spans["assigned_to_running"], 0.5),
                "submit_to_final_p50_ms": percentile(spans["to_final"], 0.5),
                "measured_with": "the scheduler's task listener, perf_counter "
                "in the scheduler process",
            },
        )
    ]


# -- 4: scheduler only -----------------------------------------------------------------------


class NullStore:
    """A store that keeps nothing: the scheduler's own logic, without SQLite."""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def insert_tasks(self, tasks: Any) -> None: ...
    def update_tasks(self, tasks: Any) -> None: ...
    def save_attempts(self, attempts: Any) -> None: ...
    def save_workers(self, workers: Any) -> None: ...
    def delete_workers(self, worker_ids: Any) -> None: ...
    def save_queue_usage(self, usages: Any) -> None: ...
    def get_task(self, task_id: str) -> None:
        return None

    def find_tasks_by_name(self, name: str) -> list[Any]:
        return []

    def find_task_ids_by_keys(self, keys: Any) -> dict[str, str]:
        return {}

    def list_tasks(self, **_: Any) -> list[Any]:
        return []

    def list_attempts(self, task_id: str) -> list[Any]:
        return []

    def load_unfinished_tasks(self) -> list[Any]:
        return []

    def load_workers(self) -> list[Any]:
        return []

    def load_queue_usage(self) -> list[Any]:
        return []

    def max_seq(self) -> int:
        return 0

    def close(self) -> None: ...


def core_run(
    count: int,
    *,
    workers: int,
    per_poll: int,
    store_kind: str,
    queues: Sequence[fairshare.QueueConfig] = (),
    tasks: Sequence[models.Submission] = (),
) -> dict[str, float]:
    """Drives a Scheduler directly: simulated workers poll and report in turn until all final.

    per_poll=1 behaves like a one-slot worker: one poll, then RUNNING and COMPLETED as two
    separate reports. per_poll>1 takes that many tasks per poll and reports them all (RUNNING
    and COMPLETED) in one batch, like BatchUpdateTaskStatus.
    """
    with tempfile.TemporaryDirectory(prefix="vahana-bench-core-") as tmp:
        store: Any = (
            sqlite.SqliteStore(Path(tmp) / "core.db") if store_kind == "sqlite" else NullStore()
        )
        sched = scheduler_module.Scheduler(store)
        sched.recover()
        sched.set_queues(queues)
        ids = [f"core-{i}" for i in range(workers)]
        for worker_id in ids:
            sched.register(
                records.Registration(
                    worker_id=worker_id, capacity=models.Resources(), max_tasks=per_poll
                )
            )
        counter = FinalCounter(count)
        sched.add_listener(counter)
        cpu_before = cpu_self()
        started = time.perf_counter()
        sched.submit(list(tasks) or submissions(count, queues=len(queues)))
        submitted = time.perf_counter()
        Running, Completed = models.TaskPhase.RUNNING, models.TaskPhase.COMPLETED
        while len(counter.final) < count:
            for worker_id in ids:
                tasks = sched.poll(worker_id, per_poll).tasks
                if not tasks:
                    continue
                now = time.time()
                running = [
                    records.StatusReport(t.id, t.attempt, Running, timestamp=now) for t in tasks
                ]
                completed = [
                    records.StatusReport(t.id, t.attempt, Completed, exit_code=0, timestamp=now)
                    for t in tasks
                ]
                if per_poll == 1:
                    sched.report(worker_id, running)
                    sched.report(worker_id, completed)
                else:
                    sched.report(worker_id, running + completed)
        elapsed = time.perf_counter() - started
        cpu = cpu_self() - cpu_before
        store.close()
    return {
        "tasks_per_s": count / elapsed,
        "seconds": elapsed,
        "submit_seconds": submitted - started,
        "cpu_us_per_task": cpu / count * 1e6,
    }


def scheduler_core(count: int, workers: int = 4) -> list[Result]:
    results = []
    for label, per_poll in (("per_task", 1), ("batched", 64)):
        log(f"scheduler core ({label}): {count} tasks, {workers} simulated workers")
        real = core_run(count, workers=workers, per_poll=per_poll, store_kind="sqlite")
        bare = core_run(count, workers=workers, per_poll=per_poll, store_kind="null")
        results.append(
            Result(
                f"scheduler_only_core_{label}",
                real["tasks_per_s"],
                "tasks/s",
                detail={
                    "tasks": count,
                    "workers": workers,
                    "tasks_per_poll": per_poll,
                    "reports": "RUNNING and COMPLETED separately"
                    if per_poll == 1
                    else "RUNNING+COMPLETED of the whole poll in one batch",
                    "store": "SQLite (WAL, synchronous=NORMAL) in a temp dir",
                    "seconds": real["seconds"],
                    "submit_seconds": real["submit_seconds"],
                    "cpu_us_per_task": real["cpu_us_per_task"],
                },
                comparison={
                    "null_store_tasks_per_s": bare["tasks_per_s"],
                    "null_store_cpu_us_per_task": bare["cpu_us_per_task"],
                    "sqlite_share_of_time": 1 - real["tasks_per_s"] / bare["tasks_per_s"],
                },
            )
        )
    return results


async def _grpc_run(count: int, workers: int, per_poll: int) -> dict[str, Any]:
    async with scheduler_process(workers=0, tasks_per_worker=1) as process:
        sim = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.simworkers",
            process.address,
            f"--workers={workers}",
            f"--max-tasks={per_poll}",
            f"--expect={count}",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            await wait_for_workers(process.scheduler, workers)
            counter = FinalCounter(count)
            process.scheduler.add_listener(counter)
            cpu_before = cpu_self()
            started = time.perf_counter()
            process.scheduler.submit(submissions(count))
            done = asyncio.ensure_future(counter.done.wait())
            exited = asyncio.ensure_future(sim.wait())
            await asyncio.wait(
                {done, exited}, timeout=FINAL_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            elapsed = time.perf_counter() - started
            cpu = cpu_self() - cpu_before
            process.scheduler.remove_listener(counter)
            if not done.done():
                done.cancel()
                raise RuntimeError(
                    f"simulated workers stopped after {len(counter.final)} of {count}"
                )
            out, _ = await asyncio.wait_for(sim.communicate(), 30)
        finally:
            if sim.returncode is None:
                sim.kill()
                await sim.wait()
    client = json.loads(out.decode().strip().splitlines()[-1])
    return {
        "tasks_per_s": count / elapsed,
        "seconds": elapsed,
        "scheduler_cpu_us_per_task": cpu / count * 1e6,
        "scheduler_cpu_share_of_one_core": cpu / elapsed,
        "client_cpu_us_per_task": client["cpu_seconds"] / count * 1e6,
        "polls": client["polls"],
        "batches": client["batches"],
    }


def scheduler_grpc(count: int, workers: int = 4) -> list[Result]:
    results = []
    for label, per_poll in (("per_task", 1), ("batched", 64)):
        log(f"scheduler over gRPC ({label}): {count} tasks, {workers} simulated workers")
        run = asyncio.run(_grpc_run(count, workers, per_poll))
        results.append(
            Result(
                f"scheduler_only_grpc_{label}",
                run["tasks_per_s"],
                "tasks/s",
                detail={
                    "tasks": count,
                    "workers": workers,
                    "max_tasks_per_poll": per_poll,
                    "rpcs": "PollForTask + one BatchUpdateTaskStatus (RUNNING+COMPLETED) per poll",
                    "seconds": run["seconds"],
                    "polls": run["polls"],
                    "batches": run["batches"],
                    "scheduler_cpu_us_per_task": run["scheduler_cpu_us_per_task"],
                    "scheduler_cpu_share_of_one_core": run["scheduler_cpu_share_of_one_core"],
                    "client_process_cpu_us_per_task": run["client_cpu_us_per_task"],
                },
            )
        )
    return results


Scenario = Callable[[bool], list[Result]]

SCENARIOS: dict[str, Scenario] = {
    "end_to_end_throughput": lambda full: end_to_end(10_000 if full else 2_000),
    "dispatch_latency": lambda full: dispatch_latency(1_000 if full else 200),
    "scheduler_only_core": lambda full: scheduler_core(50_000 if full else 10_000),
    "scheduler_only_grpc": lambda full: scheduler_grpc(20_000 if full else 5_000),
}
"""Name → function(full) → figures. scheduler_cpu_per_task comes out of end_to_end_throughput."""

ALIASES = {
    "scheduler_cpu_per_task": "end_to_end_throughput",
    "scheduler_only_throughput": ("scheduler_only_core", "scheduler_only_grpc"),
}
