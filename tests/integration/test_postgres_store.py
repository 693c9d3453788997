"""The real scheduler on PostgreSQL: a kill -9 and a restart lose no task and run none twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.waiting import wait_until

TASKS = 16


@pytest.fixture
def pg_scheduler(state_dir: Path, postgres_url: str) -> Iterator[harness.SchedulerProcess]:
    process = harness.SchedulerProcess(state_dir=state_dir, store_url=postgres_url).start()
    yield process
    process.stop()


@pytest.fixture
def workers(pg_scheduler: harness.SchedulerProcess, state_dir: Path) -> Iterator[None]:
    started = [
        harness.WorkerProcess(
            worker_id=f"pg-{n}",
            server_address=pg_scheduler.address,
            working_dir=state_dir / "workers" / f"pg-{n}",
            heartbeat_interval=pg_scheduler.heartbeat_interval,
            max_tasks=2,
        ).start()
        for n in (1, 2)
    ]
    yield
    for worker in started:
        worker.cleanup()


def test_kill_9_of_a_scheduler_on_postgresql_completes_every_task_exactly_once(
    pg_scheduler: harness.SchedulerProcess, workers: None, postgres_url: str
) -> None:
    client = harness.Client(pg_scheduler.address)
    try:
        ids = client.submit(
            *[harness.submission(f"sleep 0.{i % 4}; echo {i}", f"pg-{i}") for i in range(TASKS)]
        )
        wait_until(
            lambda: sum(client.status(i) == pb.COMPLETED for i in ids) >= 3,
            timeout=30,
            message="some tasks completed",
        )
        in_flight = [i for i in ids if client.status(i) in (pb.RUNNING, pb.ASSIGNED)]
    finally:
        client.close()
    pg_scheduler.kill()
    pg_scheduler.start()
    restarted = harness.Client(pg_scheduler.address)
    try:
        wait_until(
            lambda: all(restarted.status(i) in harness.FINAL for i in ids),
            timeout=60,
            message="every task final after the restart",
        )
        statuses = [restarted.status(i) for i in ids]
    finally:
        restarted.close()
    assert statuses == [pb.COMPLETED] * TASKS
    with psycopg.connect(postgres_url) as db:
        tasks = dict(db.execute("SELECT id, phase FROM tasks").fetchall())
        completed = dict(
            db.execute(
                "SELECT task_id, COUNT(*) FROM attempts WHERE phase = 'COMPLETED' GROUP BY task_id"
            ).fetchall()
        )
    assert tasks == dict.fromkeys(ids, "COMPLETED")
    assert completed == dict.fromkeys(ids, 1)
    assert in_flight, "the kill should have caught tasks in flight"
    assert not pg_scheduler.db_path.exists(), "the scheduler used SQLite, not PostgreSQL"
