"""Store outages under load, with the real servers: a full disk under SQLite, PostgreSQL down.

A real `vahana server` and real workers run tasks while the store stops writing. Clients are
answered UNAVAILABLE with the store's reason, the health service says NOT_SERVING, workers
keep running and retry; once the store writes again the health service says SERVING, with no
restart, and every task completes exactly once (counted in the store: lost 0, completed twice 0).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb

from tests.conftest import require
from tests.fixtures import postgres
from tests.integration import harness
from tests.waiting import wait_until

TASKS = 40
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="worker.WorkerService"), timeout=2
        )
    return int(reply.status)


def refused(
    client: harness.Client, batch: list[tasks_pb.TaskSubmission], accepted: list[str]
) -> grpc.RpcError | None:
    """The error of a submission the scheduler refuses; None (its ids in `accepted`) if it
    accepted it."""
    try:
        accepted += client.submit(*batch)
    except grpc.RpcError as error:
        return error
    return None


def start_workers(
    scheduler: harness.SchedulerProcess, state_dir: Path, count: int = 2
) -> list[harness.WorkerProcess]:
    return [
        harness.WorkerProcess(
            worker_id=f"steady-{n}",
            server_address=scheduler.address,
            working_dir=state_dir / "workers" / f"steady-{n}",
            heartbeat_interval=scheduler.heartbeat_interval,
            max_tasks=2,
        ).start()
        for n in range(1, count + 1)
    ]


def refused_reports(workers: list[harness.WorkerProcess], reason: str) -> bool:
    """Whether a worker logged a report refused UNAVAILABLE for `reason` (it retries them)."""
    return any(
        "not delivered" in line and "UNAVAILABLE" in line and reason in line
        for worker in workers
        for line in worker.log_text().splitlines()
    )


def hold(seconds: float, check: Callable[[], None]) -> None:
    """Keeps checking `check` for `seconds` (the outage lasts that long)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        check()
        time.sleep(0.2)


def tally(ids: list[str], phases: dict[str, str], completions: dict[str, int]) -> tuple[int, int]:
    """(lost, completed twice): tasks not COMPLETED in the store, tasks completed more than once."""
    lost = sum(1 for task_id in ids if phases.get(task_id) != "COMPLETED")
    twice = sum(1 for task_id in ids if completions.get(task_id, 0) > 1)
    return lost, twice


# -- SQLite on a full disk ------------------------------------------------------------------------
@pytest.fixture
def small_disk(state_dir: Path) -> Iterator[Path]:
    """A 5 MiB tmpfs for the store alone (the scheduler's log stays outside it)."""
    mount_point = state_dir / "store"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount_point)],
        check=False,
        capture_output=True,
        text=True,
    )
    require(
        mounted.returncode == 0,
        f"cannot mount a tmpfs (needs root and CAP_SYS_ADMIN): {mounted.stderr.strip()}",
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Writes a file until the file system is full; returns it (remove it to make room)."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with contextlib.suppress(OSError):  # ENOSPC: full
            while os.write(descriptor, b"\0" * 65536):
                pass
    finally:
        os.close(descriptor)
    return filler


def sqlite_counts(db: Path) -> tuple[dict[str, str], dict[str, int]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        phases = dict(connection.execute("SELECT id, phase FROM tasks").fetchall())
        completions = dict(
            connection.execute(
                "SELECT task_id, COUNT(*) FROM attempts WHERE phase = 'COMPLETED' GROUP BY task_id"
            ).fetchall()
        )
    return phases, completions


def test_a_full_disk_answers_unavailable_and_every_task_completes_once_it_has_room(
    state_dir: Path, small_disk: Path
) -> None:
    db = small_disk / "vahana.db"
    scheduler = harness.SchedulerProcess(state_dir=state_dir, store_url=f"sqlite:///{db}").start()
    workers = start_workers(scheduler, state_dir)
    client = harness.Client(scheduler.address)
    try:
        ids = client.submit(
            *[harness.submission(f"sleep 0.{i % 4}; echo {i}", f"full-{i}") for i in range(TASKS)]
        )
        wait_until(
            lambda: sum(client.status(i) == pb.COMPLETED for i in ids) >= 5,
            timeout=60,
            message="some tasks completed",
        )
        filler = fill(small_disk)
        more = [harness.submission("true", f"more-{i}") for i in range(200)]
        error = wait_until(
            lambda: refused(client, more, ids), timeout=30, message="a submission refused"
        )
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        assert "disk full" in (error.details() or "") and "try again" in (error.details() or "")
        wait_until(
            lambda: health(scheduler.address) == NOT_SERVING,
            timeout=30,
            message="health NOT_SERVING while the disk is full",
        )
        unfinished_while_full = sum(client.status(i) not in harness.FINAL for i in ids)
        # Full for a while: tasks finish meanwhile, and their workers' reports are refused.
        wait_until(
            lambda: refused_reports(workers, "disk full"),
            timeout=30,
            message="a worker's report refused for the full disk",
        )
        hold(3.0, lambda: None)

        filler.unlink()
        wait_until(
            lambda: health(scheduler.address) == SERVING,
            timeout=30,
            message="health SERVING again once there is room",
        )
        ids += client.submit(*more)  # the client tries again: accepted now
        wait_until(
            lambda: all(client.status(i) in harness.FINAL for i in ids),
            timeout=120,
            message="every task final",
        )
        assert scheduler.process is not None and scheduler.process.poll() is None
        assert scheduler.starts == 1, "the scheduler was restarted"
    finally:
        client.close()
        for worker in workers:
            worker.cleanup()
        scheduler.stop()
    phases, completions = sqlite_counts(db)
    lost, twice = tally(ids, phases, completions)
    print(
        f"full disk: {len(ids)} tasks, {unfinished_while_full} unfinished when the disk was "
        f"full: lost {lost}, completed twice {twice}"
    )
    assert (lost, twice) == (0, 0)
    assert "store unhealthy: the task store cannot write: disk full" in scheduler.log_text()


# -- PostgreSQL stopped -------------------------------------------------------------------------
@pytest.fixture
def own_postgres() -> Iterator[postgres.Cluster]:
    """A cluster of this test's own: the test stops and starts it."""
    require(postgres.binaries_available(), postgres.MISSING)
    cluster = postgres.Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def postgres_counts(url: str) -> tuple[dict[str, str], dict[str, int]]:
    import psycopg

    with psycopg.connect(url) as db:
        phases = dict(db.execute("SELECT id, phase FROM tasks").fetchall())
        completions = dict(
            db.execute(
                "SELECT task_id, COUNT(*) FROM attempts WHERE phase = 'COMPLETED' GROUP BY task_id"
            ).fetchall()
        )
    return phases, completions


def live_status(client: harness.Client, task_id: str) -> int | None:
    """The status of a task the scheduler holds in memory (not final); None for a final one,
    which is read from the store, and so is UNAVAILABLE while the store is down."""
    try:
        status = client.status(task_id)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None
    return None if status in harness.FINAL else status


def test_postgresql_stopped_for_10s_under_load_and_every_task_completes(
    state_dir: Path, own_postgres: postgres.Cluster
) -> None:
    scheduler = harness.SchedulerProcess(state_dir=state_dir, store_url=own_postgres.url).start()
    workers = start_workers(scheduler, state_dir)
    client = harness.Client(scheduler.address)
    try:
        ids = client.submit(
            *[harness.submission(f"sleep 0.{i % 4}; echo {i}", f"pg-{i}") for i in range(TASKS)]
        )
        wait_until(
            lambda: sum(client.status(i) == pb.COMPLETED for i in ids) >= 5,
            timeout=60,
            message="some tasks completed",
        )
        own_postgres.stop()
        stopped = time.monotonic()
        later = [harness.submission("true", f"later-{i}") for i in range(5)]
        error = wait_until(lambda: refused(client, later, ids), timeout=10, message="refused")
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        assert "PostgreSQL" in (error.details() or ""), error.details()
        wait_until(
            lambda: health(scheduler.address) == NOT_SERVING,
            timeout=10,
            message="health NOT_SERVING while PostgreSQL is down",
        )
        unfinished_while_down = sum(1 for i in ids if live_status(client, i) is not None)

        def still_down() -> None:
            assert health(scheduler.address) == NOT_SERVING

        hold(10 - (time.monotonic() - stopped), still_down)
        assert refused_reports(workers, "PostgreSQL"), "no worker report was refused"
        own_postgres.start()
        wait_until(
            lambda: health(scheduler.address) == SERVING,
            timeout=30,
            message="health SERVING again once PostgreSQL is back",
        )
        ids += client.submit(*later)
        wait_until(
            lambda: all(client.status(i) in harness.FINAL for i in ids),
            timeout=120,
            message="every task final",
        )
        assert scheduler.process is not None and scheduler.process.poll() is None
        assert scheduler.starts == 1, "the scheduler was restarted"
    finally:
        client.close()
        for worker in workers:
            worker.cleanup()
        scheduler.stop()
    phases, completions = postgres_counts(own_postgres.url)
    lost, twice = tally(ids, phases, completions)
    print(
        f"PostgreSQL down 10 s: {len(ids)} tasks, {unfinished_while_down} unfinished when it "
        f"stopped: lost {lost}, completed twice {twice}"
    )
    assert (lost, twice) == (0, 0)
