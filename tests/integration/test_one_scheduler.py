"""One scheduler per store and per port, with real `vahana server` processes.

A second scheduler on the same SQLite state dir is refused naming the first one's pid; on the
same PostgreSQL database it stands by (serving nothing, taking no lock) until the first one's
session ends, or is refused with --no-standby; on the same port it fails and says so.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb
from vahana.store import locking

from tests.integration import harness
from tests.waiting import wait_until

REFUSED_WITHIN = 60.0
"""A refused scheduler exits at once; the bound is for a loaded machine."""


def second_server(*args: str) -> subprocess.CompletedProcess[str]:
    """A second `vahana server`, expected to exit by itself."""
    return subprocess.run(
        [sys.executable, "-m", "vahana.cli.main", "server", "--workers=0", "--metrics-port=0"]
        + list(args),
        capture_output=True,
        text=True,
        timeout=REFUSED_WITHIN,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def other_state_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vh-") as path:
        yield Path(path)


def test_a_second_scheduler_on_the_same_state_dir_exits_1_naming_the_first_ones_pid(
    scheduler: harness.SchedulerProcess, state_dir: Path
) -> None:
    assert scheduler.process is not None
    refused = second_server(f"--state-dir={state_dir}", f"--port={harness.free_port()}")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert (
        f"another scheduler (pid {scheduler.process.pid}) holds {state_dir}; stop it or use "
        "another --state-dir" in " ".join(refused.stderr.split())
    ), refused.stderr
    assert "Traceback" not in refused.stderr
    assert harness.serving(scheduler.address), "the first scheduler serves on"

    # The lock dies with its holder: after kill -9 the state dir is free at once.
    scheduler.kill()
    scheduler.start()
    assert harness.serving(scheduler.address)


def test_a_second_server_on_the_same_port_fails_and_says_the_port_is_in_use(
    scheduler: harness.SchedulerProcess, other_state_dir: Path
) -> None:
    refused = second_server(f"--state-dir={other_state_dir}", f"--port={scheduler.port}")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"port {scheduler.port} is in use" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "add_port.cc" not in refused.stderr, "gRPC's own log line comes before ours"
    assert harness.serving(scheduler.address)


@pytest.fixture
def pg_holder(state_dir: Path, postgres_url: str) -> Iterator[harness.SchedulerProcess]:
    process = harness.SchedulerProcess(state_dir=state_dir, store_url=postgres_url).start()
    yield process
    process.stop()


def lock_holders(postgres_url: str) -> list[int]:
    """The scheduler pids (from application_name) of the sessions holding the store lock."""
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s::bigint::oid "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (locking.ADVISORY_KEY,),
        ).fetchall()
    return [int(row[0].split()[1].removeprefix("pid=")) for row in rows]


def test_a_second_scheduler_on_postgresql_stands_by_without_the_store_and_takes_over(
    pg_holder: harness.SchedulerProcess, other_state_dir: Path, postgres_url: str
) -> None:
    first = harness.Client(pg_holder.address)
    try:
        [task_id] = first.submit(harness.submission("true", "before-takeover"))
    finally:
        first.close()
    assert pg_holder.process is not None
    holder_pid = pg_holder.process.pid
    standby = harness.SchedulerProcess(state_dir=other_state_dir, store_url=postgres_url).launch()
    try:
        wait_until(
            lambda: (
                "standby:" in standby.log_text()
                and f"scheduler pid {holder_pid}" in standby.log_text()
            ),
            timeout=30,
            message="the second scheduler says it stands by for the first one's pid",
        )
        assert standby.process is not None and standby.process.poll() is None
        # A standby serves nothing and never holds the store: only the first one can write.
        assert not harness.serving(standby.address)
        assert lock_holders(postgres_url) == [holder_pid]
        assert "recovered" not in standby.log_text()

        pg_holder.kill()
        wait_until(
            lambda: standby._serving(), timeout=30, message="the standby serving after kill -9"
        )
        assert "took over the store" in standby.log_text()
        assert lock_holders(postgres_url) == [standby.process.pid]
        second = harness.Client(standby.address)
        try:
            assert second.get(task_id).status == pb.PENDING  # the first one's task, recovered
        finally:
            second.close()
    finally:
        standby.stop()


def test_with_no_standby_a_second_scheduler_on_postgresql_exits_1_naming_the_pid(
    pg_holder: harness.SchedulerProcess, other_state_dir: Path, postgres_url: str
) -> None:
    assert pg_holder.process is not None
    refused = second_server(
        f"--state-dir={other_state_dir}",
        f"--port={harness.free_port()}",
        f"--store-url={postgres_url}",
        "--no-standby",
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    message = " ".join(refused.stderr.split())
    assert f"another scheduler (pid {pg_holder.process.pid}) holds the store" in message, message
    assert "Traceback" not in refused.stderr
    assert harness.serving(pg_holder.address)


def test_a_scheduler_whose_session_was_taken_over_stops_and_writes_no_more(
    pg_holder: harness.SchedulerProcess, other_state_dir: Path, postgres_url: str
) -> None:
    assert pg_holder.process is not None
    standby = harness.SchedulerProcess(state_dir=other_state_dir, store_url=postgres_url).launch()
    old = harness.Client(pg_holder.address)
    try:
        wait_until(lambda: "standby:" in standby.log_text(), timeout=30, message="standing by")
        # The first one's session ends (a network cut, an administrator): its lock goes with it.
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE %s",
                (f"vahana pid={pg_holder.process.pid} %",),
            )
        wait_until(standby._serving, timeout=30, message="the standby took over")
        for _ in range(2):  # the first call finds the connection lost, the next the new holder
            with pytest.raises(grpc.RpcError):
                old.submit(harness.submission("true", "to-the-old-one"))
        assert pg_holder.process.wait(timeout=30) == 1
        said = pg_holder.log_text()
        assert "took the store" in said and "writes no more" in said, said[-3000:]
        new = harness.Client(standby.address)
        try:
            assert list(new.tasks.ListTasks(tasks_pb.ListTasksRequest(), timeout=5).tasks) == []
        finally:
            new.close()
    finally:
        old.close()
        standby.stop()
