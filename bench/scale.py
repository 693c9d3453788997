"""Scale, memory and recovery scenarios (issue 9) and SLURM pilots against sbatch (issue 6).

- heartbeat_scale: a `vahana server` subprocess (no workers of its own) and simulated workers
  in two other processes (bench/simworkers.py, heartbeat mode) that register over gRPC and
  heartbeat at their interval; the scheduler's CPU and RSS come from /proc/<pid>.
- queued_memory: a `vahana server` subprocess; 100,000 tasks submitted over gRPC in batches,
  no workers; its RSS from /proc/<pid>/status.
- recovery_after_worker_kill: a SchedulerProcess with 2 local workers, heartbeat 1 s, 3 missed;
  kill -9 of the worker running a task → the task RUNNING on another worker.
- slurm_pilots_vs_sbatch: a one-node SLURM (tests/fixtures/slurm.py), an embedded slurm pool
  of 2 pilots running N `true` tasks, against the same N as one `sbatch --wrap` job each.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from vahana.app import service
from vahana.app import settings as settings_module
from vahana.core import models
from vahana.proto import task_service_pb2 as tpb
from vahana.proto import task_service_pb2_grpc
from vahana.proto import worker_pb2 as wpb

from bench.common import Result, log, percentile
from bench.scenarios import ROOT, FinalCounter, submissions, wait_for_workers

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


# -- /proc helpers ----------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def descendants(pid: int) -> list[int]:
    """Every process below pid (children, their children, …), from /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def vahana_command() -> list[str]:
    script = Path(sys.executable).parent / "vahana"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vahana.cli.main"]


@contextlib.contextmanager
def server_subprocess(heartbeat_interval: float = 30.0) -> Iterator[tuple[int, str]]:
    """`vahana server --workers 0` in a temp dir (its path names it for the stray check);
    yields (pid, address) once it answers gRPC; SIGTERM (then SIGKILL) on exit."""
    with tempfile.TemporaryDirectory(prefix="vahana-bench-server-") as tmp:
        port = free_port()
        command = [
            *vahana_command(),
            "server",
            "--workers",
            "0",
            "--port",
            str(port),
            "--state-dir",
            tmp,
            "--heartbeat-interval",
            str(heartbeat_interval),
            "--missed-heartbeats",
            "3",
            "--metrics-port",
            "0",
            "--no-ui",  # the scheduler alone (dashboard_cpu measures the dashboard)
            "--log-level",
            "warning",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAHANA_")}
        with open(Path(tmp) / "server.log", "wb") as out:
            server = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
            )
        address = f"127.0.0.1:{port}"
        try:
            with grpc.insecure_channel(address) as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=60)
                except grpc.FutureTimeoutError:
                    log_text = (Path(tmp) / "server.log").read_text()[-2000:]
                    raise RuntimeError(f"vahana server did not start: {log_text}") from None
            yield server.pid, address
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


# -- heartbeat_scale ----------------------------------------------------------------------------


def heartbeat_scale(full: bool) -> list[Result]:
    workers = 10_000 if full else 2_000
    interval = 30.0 if full else 30.0 * workers / 10_000  # short: 6 s, the same ~333/s
    window = 60.0 if full else 30.0
    processes = 2
    log(
        f"heartbeat scale: {workers} simulated workers in {processes} processes, "
        f"heartbeat every {interval:g} s (~{workers / interval:.0f}/s), {window:g} s measured"
    )
    with server_subprocess(heartbeat_interval=interval) as (pid, address):
        rss_idle = proc_memory(pid)["VmRSS"]
        sims = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.simworkers",
                    address,
                    f"--workers={workers // processes}",
                    f"--heartbeat-interval={interval}",
                ],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        try:
            started = time.perf_counter()
            for sim in sims:
                assert sim.stdout is not None
                line = sim.stdout.readline().strip()
                if line != "registered":
                    raise RuntimeError(f"simulated workers did not register: {line!r}")
            registration = time.perf_counter() - started
            rss_registered = proc_memory(pid)["VmRSS"]
            time.sleep(interval)  # one full round of heartbeats before measuring
            for sim in sims:
                assert sim.stdin is not None
                sim.stdin.write("start\n")
                sim.stdin.flush()
            cpu_before, wall_before = proc_cpu_seconds(pid), time.perf_counter()
            time.sleep(window)
            cpu = proc_cpu_seconds(pid) - cpu_before
            wall = time.perf_counter() - wall_before
            memory = proc_memory(pid)
            reports = []
            for sim in sims:
                out, _ = sim.communicate("stop\n", timeout=60)
                reports.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for sim in sims:
                if sim.poll() is None:
                    sim.kill()
                    sim.wait()
    latencies = [x for r in reports for x in r["latencies_ms"]]
    beats = sum(r["heartbeats"] for r in reports)
    return [
        Result(
            "heartbeat_scale",
            cpu / wall * 100,
            "% of one core",
            detail={
                "workers": workers,
                "heartbeat_interval_s": interval,
                "note": ""
                if full
                else "short mode: 2,000 workers at a 6 s interval, the same "
                "~333 heartbeats/s as 10,000 at 30 s",
                "client_processes": processes,
                "measured_seconds": wall,
                "heartbeats_per_s": beats / wall,
                "heartbeats": beats,
                "failures": sum(r["failures"] for r in reports),
                "reregister_answers": sum(r["reregister"] for r in reports),
                "scheduler_cpu_seconds": cpu,
                "scheduler_cpu_us_per_heartbeat": cpu / max(beats, 1) * 1e6,
                "scheduler_rss_mib": memory["VmRSS"] / MIB,
                "scheduler_peak_rss_mib": memory["VmHWM"] / MIB,
                "scheduler_rss_idle_mib": rss_idle / MIB,
                "scheduler_rss_after_registration_mib": rss_registered / MIB,
                "registration_seconds": registration,
                "heartbeat_p50_ms": percentile(latencies, 0.5),
                "heartbeat_p99_ms": percentile(latencies, 0.99),
                "heartbeat_max_ms": max(latencies, default=float("nan")),
                "calls_over_20ms": sum(r["slow_calls"] for r in reports),
                "their_distinct_100ms_slots_per_client": [
                    r["slow_call_slots_100ms"] for r in reports
                ],
                "client_cpu_share_of_one_core": sum(r["cpu_seconds_measured"] for r in reports)
                / wall,
                "measured_with": "scheduler: /proc/<pid>/stat utime+stime and /proc/<pid>/status "
                "VmRSS of a `vahana server --workers 0` subprocess; latency: SendHeartbeat call → "
                "response in the client processes (workers only heartbeat, no long polls open)",
            },
            comparison={"target_cpu_percent": 25.0, "target_p99_ms": 10.0},
        )
    ]


# -- queued_memory ----------------------------------------------------------------------------


def queued_memory(full: bool) -> list[Result]:
    count, batch = 100_000, 1_000
    log(f"queued memory: {count:,} tasks over gRPC in batches of {batch:,}, no workers")
    with server_subprocess() as (pid, address):
        rss_idle = proc_memory(pid)["VmRSS"]
        started = time.perf_counter()
        with grpc.insecure_channel(address) as channel:
            stub = task_service_pb2_grpc.TaskServiceStub(channel)
            for first in range(0, count, batch):
                stub.SubmitTasks(
                    tpb.SubmitTasksRequest(
                        tasks=[
                            tpb.TaskSubmission(spec=wpb.Task(name=f"queued-{i}", command="true"))
                            for i in range(first, first + batch)
                        ]
                    ),
                    timeout=120,
                )
        submit_seconds = time.perf_counter() - started
        time.sleep(1.0)
        memory = proc_memory(pid)
    return [
        Result(
            "queued_memory",
            memory["VmRSS"] / MIB,
            "MiB RSS",
            detail={
                "queued_tasks": count,
                "batch": batch,
                "submit_seconds": submit_seconds,
                "submit_tasks_per_s": count / submit_seconds,
                "rss_idle_mib": rss_idle / MIB,
                "peak_rss_mib": memory["VmHWM"] / MIB,
                "kib_per_queued_task": (memory["VmRSS"] - rss_idle) / count / 1024,
                "measured_with": "/proc/<pid>/status VmRSS of a `vahana server --workers 0` "
                "subprocess (SQLite store), 1 s after the last SubmitTasks",
            },
            comparison={"target_mib": 500.0},
        )
    ]


# -- recovery_after_worker_kill -----------------------------------------------------------------


class RunningOn:
    """A task listener noting (worker_id, perf_counter) each time the watched task is RUNNING."""

    def __init__(self) -> None:
        self.task_id = ""
        self.runs: list[tuple[str, float]] = []
        self.requeued_at: float | None = None
        self.changed = asyncio.Event()

    def __call__(self, task: models.TaskRecord) -> None:
        if (
            task.id == self.task_id
            and self.runs
            and self.requeued_at is None
            and (task.phase == models.TaskPhase.PENDING)
        ):
            self.requeued_at = time.perf_counter()
        moved = not self.runs or self.runs[-1][0] != task.worker_id
        if task.id == self.task_id and task.phase == models.TaskPhase.RUNNING and moved:
            self.runs.append((task.worker_id, time.perf_counter()))
            self.changed.set()


async def _recovery(interval: float, missed: int, backoff: float | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vahana-bench-") as tmp:
        settings = settings_module.load(
            {
                "server.port": 0,
                "metrics.port": 0,  # as in `vahana run`; a port held elsewhere cannot fail the run
                "store.state_dir": tmp,
                "local_pool.workers": 2,
                "local_pool.tasks_per_worker": 1,
                "scheduler.heartbeat_interval_seconds": interval,
                "scheduler.missed_heartbeats": missed,
            },
            environ={},
        )
        process = service.SchedulerProcess(settings, local_workers=2)
        await process.start()
        orphans: list[int] = []
        try:
            await wait_for_workers(process.scheduler, 2)
            watch = RunningOn()
            process.scheduler.add_listener(watch)
            [task] = submissions(1, "sleep 60", prefix="recovery")
            if backoff is not None:
                task = dataclasses.replace(task, retry=models.RetryPolicy(backoff_seconds=backoff))
            [task_id] = process.scheduler.submit([task])
            watch.task_id = task_id
            await asyncio.wait_for(watch.changed.wait(), 30)
            victim = watch.runs[0][0]
            pid = process.pool.pid_of(victim)  # type: ignore[union-attr]
            orphans = descendants(pid)  # the task's own processes (their own session)
            watch.changed.clear()
            killed = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            await asyncio.wait_for(watch.changed.wait(), 60)
            recovered = watch.runs[-1]
            process.scheduler.remove_listener(watch)
            process.scheduler.cancel(task_id)
        finally:
            for orphan in orphans:  # `sleep 60` of the killed worker, left behind by kill -9
                with contextlib.suppress(ProcessLookupError):
                    os.kill(orphan, signal.SIGKILL)
            await process.stop()
    requeued = (watch.requeued_at or float("nan")) - killed
    return {
        "seconds": recovered[1] - killed,
        "requeued": requeued,
        "from": victim,
        "to": recovered[0],
        "orphans_killed": len(orphans),
    }


def recovery_after_worker_kill(full: bool) -> list[Result]:
    interval, missed = 1.0, 3
    runs = 5 if full else 3
    log(
        f"recovery: kill -9 of a worker mid-task, heartbeat {interval:g} s × {missed} missed, "
        f"{runs} run(s)"
    )
    measured = [asyncio.run(_recovery(interval, missed, None)) for _ in range(runs)]
    seconds = [m["seconds"] for m in measured]
    log("recovery again with the task's retry backoff at 0 s")
    no_backoff = asyncio.run(_recovery(interval, missed, 0.0))
    return [
        Result(
            "recovery_after_worker_kill",
            max(seconds),
            "s (max of runs)",
            detail={
                "runs": runs,
                "seconds_each": seconds,
                "median_s": percentile(seconds, 0.5),
                "kill_to_requeued_s_each": [m["requeued"] for m in measured],
                "default_retry_backoff_s": models.RetryPolicy().backoff_seconds,
                "with_zero_backoff_s": no_backoff["seconds"],
                "note": "kill → requeued is the silence limit (interval "
                "× missed) from the kill plus "
                "the health-check tick; requeued → RUNNING is the task's retry backoff (1 s by "
                "default, applied to infrastructure losses too) plus dispatch",
                "heartbeat_interval_s": interval,
                "missed_heartbeats": missed,
                "workers": 2,
                "rerun_on_another_worker": all(m["from"] != m["to"] for m in measured),
                "measured_with": "perf_counter at os.kill(SIGKILL) → the scheduler's task listener "
                "seeing the task RUNNING with another worker_id (local pool of 2, `sleep 60`)",
            },
            comparison={"bound_s": interval * missed + 1.0},
        )
    ]


# -- slurm_pilots_vs_sbatch ---------------------------------------------------------------------


def _pool_yaml(working_dir: str) -> str:
    return f"""\
apiVersion: vahana.dev/v1alpha1
kind: WorkerPool
metadata: {{name: hpc}}
spec:
  type: slurm
  minWorkers: 2
  maxWorkers: 2
  tasksPerWorker: 2
  walltime: 30m
  idleTimeout: 30m
  resources: {{cpu: 1, memory: 256Mi}}
  slurm: {{partition: debug, workingDir: {working_dir}}}
"""


async def _pilots(count: int, state_dir: str, working_dir: str) -> dict[str, float]:
    from vahana.manifests import pools as pool_manifests

    settings = settings_module.load(
        {
            "server.port": 0,
            "metrics.port": 0,  # as in `vahana run`; a port held elsewhere cannot fail the run
            "store.state_dir": state_dir,
            "local_pool.workers": 0,
            "scheduler.heartbeat_interval_seconds": 5.0,
            "pools.resync_seconds": 0.5,
        },
        environ={},
    )
    manifests = pool_manifests.parse_pool_documents(_pool_yaml(working_dir), source="bench")
    started = time.perf_counter()
    process = service.SchedulerProcess(settings, pools=manifests)
    await process.start()
    try:
        await wait_for_workers(process.scheduler, 2, timeout=180)
        startup = time.perf_counter() - started
        counter = FinalCounter(count)
        process.scheduler.add_listener(counter)
        began = time.perf_counter()
        process.scheduler.submit(submissions(count, prefix="pilot"))
        await asyncio.wait_for(counter.done.wait(), 600)
        elapsed = time.perf_counter() - began
        process.scheduler.remove_listener(counter)
        await process.pools.remove("default/hpc")  # type: ignore[union-attr]  # scancels
    finally:
        await process.stop()
    return {"seconds": elapsed, "startup_seconds": startup, "not_completed": counter.not_completed}


def _sbatch_each(count: int, out_dir: str) -> dict[str, float]:
    name = "vahana-bench-sbatch"
    started = time.perf_counter()
    for i in range(count):
        subprocess.run(
            [
                "sbatch",
                "--parsable",
                "-p",
                "debug",
                "-J",
                name,
                "-c",
                "1",
                "--mem=256M",
                "-o",
                f"{out_dir}/job-{i}.out",
                "--wrap",
                "true",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    submitted = time.perf_counter() - started
    deadline = time.monotonic() + 900
    while True:
        queued = subprocess.run(
            ["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, check=True
        ).stdout.split()
        if not queued:
            break
        if time.monotonic() > deadline:
            subprocess.run(["scancel", "-n", name], check=False)
            raise TimeoutError(f"{len(queued)} sbatch jobs still queued")
        time.sleep(0.1)
    return {
        "seconds": time.perf_counter() - started,
        "submit_seconds": submitted,
        "outputs": len(list(Path(out_dir).glob("job-*.out"))),
    }


def slurm_pilots_vs_sbatch(full: bool) -> list[Result]:
    count = 500 if full else 100
    try:
        from tests.fixtures import slurm
    except ImportError:
        slurm = None  # type: ignore[assignment]
    if slurm is None or not slurm.binaries_available():
        why = "tests/fixtures/slurm.py missing" if slurm is None else slurm.MISSING + " (as root)"
        log(f"slurm pilots vs sbatch: skipped, {why}")
        return [Result("slurm_pilots_vs_sbatch", float("nan"), "skipped", {"skipped": why})]
    log(f"slurm pilots vs sbatch: starting a one-node SLURM; {count} tasks each way")
    saved = os.environ.get("SLURM_CONF")
    with (
        slurm.running_slurm() as conf,
        tempfile.TemporaryDirectory(prefix="vahana-bench-slurm-") as tmp,
    ):
        os.environ["SLURM_CONF"] = conf
        try:
            log(f"pool of 2 pilots: {count} `true` tasks")
            pilots = asyncio.run(_pilots(count, f"{tmp}/state", f"{tmp}/pilots"))
            log(f"sbatch --wrap true: {count} jobs")
            Path(f"{tmp}/jobs").mkdir()
            each = _sbatch_each(count, f"{tmp}/jobs")
        finally:
            if saved is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = saved
        shutil.rmtree(f"{tmp}/pilots", ignore_errors=True)
    return [
        Result(
            "slurm_pilots_vs_sbatch",
            each["seconds"] / pilots["seconds"],
            "× faster (pilots)",
            detail={
                "tasks": count,
                "pilots": 2,
                "tasks_per_pilot": 2,
                "pilots_seconds": pilots["seconds"],
                "pilots_tasks_per_s": count / pilots["seconds"],
                "pilots_startup_seconds": pilots["startup_seconds"],
                "pilots_not_completed": pilots["not_completed"],
                "ratio_with_pilot_startup": each["seconds"]
                / (pilots["seconds"] + pilots["startup_seconds"]),
                "sbatch_seconds": each["seconds"],
                "sbatch_submit_seconds": each["submit_seconds"],
                "sbatch_jobs_per_s": count / each["seconds"],
                "sbatch_output_files": each["outputs"],
                "slurm": "SLURM 22.05, one node with 8 CPUs declared "
                "(FAKE_CPUS=8), sched/backfill, "
                "cons_tres, batch_sched_delay=0: tests/fixtures/slurm-fixture.sh",
                "measured_with": "pilots: submit → all final (scheduler listener), pilots already "
                "registered (start-up in pilots_startup_seconds); sbatch: first sbatch → squeue "
                "empty for the job name",
            },
            comparison={"target_ratio": 20.0},
        )
    ]


SCENARIOS = {
    "slurm_pilots_vs_sbatch": slurm_pilots_vs_sbatch,
    "heartbeat_scale": heartbeat_scale,
    "queued_memory": queued_memory,
    "recovery_after_worker_kill": recovery_after_worker_kill,
}
