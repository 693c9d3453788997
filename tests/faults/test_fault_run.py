"""The fault run: 1,000 tasks through link cuts and kill -9 of a worker and of the scheduler.

Every accepted task must end COMPLETED exactly once in the store: tasks lost = 0 and
duplicate completions = 0.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana.proto import worker_pb2 as pb

from tests.faults.proxy import FaultProxy
from tests.integration import harness
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
TASKS = 1000
CUTS = 20


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vh-fault-") as path:
        yield Path(path)


def _store_counts(db: Path) -> tuple[int, int, int, int]:
    """(tasks, completed tasks, tasks with no completed attempt, tasks completed twice)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        tasks = connection.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        completed = connection.execute(
            "SELECT COUNT(*) FROM tasks WHERE phase = 'COMPLETED'"
        ).fetchone()[0]
        per_task = dict(
            connection.execute(
                "SELECT task_id, COUNT(*) FROM attempts WHERE phase = 'COMPLETED' GROUP BY task_id"
            ).fetchall()
        )
        ids = [row[0] for row in connection.execute("SELECT id FROM tasks")]
    lost = sum(1 for task_id in ids if per_task.get(task_id, 0) == 0)
    twice = sum(1 for count in per_task.values() if count > 1)
    return tasks, completed, lost, twice


def test_every_task_completes_exactly_once_through_cuts_and_crashes(state_dir: Path) -> None:
    scheduler = harness.SchedulerProcess(state_dir=state_dir).start()
    proxy = FaultProxy(scheduler.port).start()
    workers = [
        harness.WorkerProcess(
            f"faulty-{n}", f"127.0.0.1:{proxy.port}", state_dir / "workers" / f"w{n}", max_tasks=2
        ).start()
        for n in range(3)
    ]
    client = harness.Client(scheduler.address)
    stop_cutting = threading.Event()
    try:
        submissions = [harness.submission(f"sleep 0.0{i % 10}", f"f-{i}") for i in range(TASKS)]
        for start in range(0, TASKS, 250):
            client.submit(*submissions[start : start + 250])

        def done() -> int:
            return sum(1 for t in _all(client) if t.status == pb.COMPLETED)

        def cutter() -> None:
            # The pause between cuts is the fault schedule, not a synchronisation.
            while proxy.cuts < CUTS and not stop_cutting.wait(0.4):
                proxy.cut()

        threading.Thread(target=cutter, daemon=True).start()
        wait_until(
            lambda: done() >= TASKS // 4, timeout=120, interval=0.2, message="a quarter done"
        )
        workers[0].kill()
        wait_until(lambda: done() >= TASKS // 2, timeout=120, interval=0.2, message="half done")
        scheduler.kill()
        scheduler.start()
        client.close()
        client = harness.Client(scheduler.address)
        wait_until(
            lambda: done() == TASKS, timeout=240, interval=0.5, message="every task completed"
        )
        wait_until(lambda: proxy.cuts >= CUTS, timeout=60, message=f"{CUTS} link cuts")
    finally:
        stop_cutting.set()
        client.close()
        for worker in workers:
            worker.cleanup()
        proxy.stop()
        scheduler.stop()
    tasks, completed, lost, twice = _store_counts(scheduler.db_path)
    print(
        f"\nfault run: {tasks} tasks, {proxy.cuts} link cuts, 1 worker and 1 scheduler kill -9: "
        f"tasks lost = {lost}, duplicate completions = {twice}"
    )
    assert (tasks, completed, lost, twice) == (TASKS, TASKS, 0, 0)


def _all(client: harness.Client) -> list:  # type: ignore[type-arg]
    from vahana.proto import task_service_pb2 as tasks_pb

    return list(client.tasks.ListTasks(tasks_pb.ListTasksRequest(), timeout=30).tasks)
