"""Crashes and outages: a lost worker, a killed scheduler, a scheduler away for a while."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.waiting import wait_until


def test_a_task_on_a_killed_worker_reruns_elsewhere_within_the_heartbeat_limit(
    scheduler: harness.SchedulerProcess, client: harness.Client, start_worker: WorkerFactory
) -> None:
    first = start_worker("doomed")
    [task_id] = client.submit(harness.submission("sleep 2; echo survived", "victim"))
    wait_until(
        lambda: client.get(task_id).worker_id == "doomed" and client.status(task_id) == pb.RUNNING,
        timeout=15,
        message="task running on the first worker",
    )
    start_worker("rescuer")
    wait_until(
        lambda: len(client.list_workers()) == 2, timeout=15, message="second worker registered"
    )

    first.kill()
    killed_at = time.monotonic()
    limit = scheduler.missed_heartbeats * scheduler.heartbeat_interval + 2
    # Seen RUNNING, or already past it: the rerun lasts 2 s, a loaded machine may poll late.
    try:
        wait_until(
            lambda: (
                lambda t: (
                    t.worker_id == "rescuer"
                    and t.attempt == 2
                    and t.status in (pb.RUNNING, pb.COMPLETED)
                )
            )(client.get(task_id)),
            timeout=limit + 5,
            message="task running again on the second worker",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; the task now: {client.get(task_id)}") from None
    rerun_after = time.monotonic() - killed_at
    assert rerun_after <= limit, f"rerun took {rerun_after:.1f}s, limit {limit:.1f}s"

    done = wait_until(
        lambda: (lambda t: t if t.status in harness.FINAL else None)(client.get(task_id)),
        timeout=20,
        message="task finished",
    )
    assert done.status == pb.COMPLETED
    assert "survived" in done.output_tail
    assert done.infra_failures == 1 and done.task_failures == 0


def _final_counts(db: Path) -> tuple[int, dict[str, int], list[str]]:
    """(tasks, final attempts per task, tasks not final) read straight from the store."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        tasks = connection.execute("SELECT id, phase FROM tasks").fetchall()
        finals = dict(
            connection.execute(
                "SELECT task_id, COUNT(*) FROM attempts WHERE phase = 'COMPLETED' GROUP BY task_id"
            ).fetchall()
        )
    unfinished = [
        task_id for task_id, phase in tasks if phase in ("PENDING", "ASSIGNED", "RUNNING")
    ]
    return len(tasks), finals, unfinished


def test_kill_9_of_the_scheduler_loses_no_task_and_completes_none_twice(
    scheduler: harness.SchedulerProcess, client: harness.Client, start_worker: WorkerFactory
) -> None:
    start_worker("steady-1", max_tasks=2)
    start_worker("steady-2", max_tasks=2)
    ids = client.submit(
        *[harness.submission(f"sleep 0.{i % 5}; echo {i}", f"job-{i}") for i in range(40)]
    )
    wait_until(
        lambda: sum(client.status(i) == pb.COMPLETED for i in ids) >= 5,
        timeout=30,
        message="some tasks completed",
    )
    running_before = [i for i in ids if client.status(i) in (pb.RUNNING, pb.ASSIGNED)]
    scheduler.kill()
    scheduler.start()
    restarted = harness.Client(scheduler.address)
    try:
        wait_until(
            lambda: all(restarted.status(i) in harness.FINAL for i in ids),
            timeout=60,
            message="every task final after the restart",
        )
        statuses = [restarted.status(i) for i in ids]
    finally:
        restarted.close()
    assert statuses == [pb.COMPLETED] * len(ids)
    total, completed_attempts, unfinished = _final_counts(scheduler.db_path)
    assert total == len(ids)
    assert unfinished == []
    assert all(completed_attempts.get(i) == 1 for i in ids), {
        i: completed_attempts.get(i) for i in ids if completed_attempts.get(i) != 1
    }
    assert running_before, "the kill should have caught tasks in flight"


def test_running_tasks_survive_a_scheduler_outage_and_their_results_are_accepted(
    scheduler: harness.SchedulerProcess, client: harness.Client, start_worker: WorkerFactory
) -> None:
    start_worker("patient", max_tasks=2)
    outage = 3 * scheduler.heartbeat_interval
    ids = client.submit(
        harness.submission(f"sleep {outage + 1}; echo finished-a", "a"),
        harness.submission(f"sleep {outage + 1}; echo finished-b", "b"),
    )
    wait_until(
        lambda: all(client.status(i) == pb.RUNNING for i in ids), timeout=15, message="both running"
    )
    scheduler.stop()
    down_until = time.monotonic() + outage
    # The outage itself: the scheduler stays away for 3 heartbeat intervals.
    wait_until(lambda: time.monotonic() >= down_until, timeout=outage + 1, message="the outage")
    scheduler.start()
    restarted = harness.Client(scheduler.address)
    try:
        done = wait_until(
            lambda: (lambda ts: ts if all(t.status in harness.FINAL for t in ts) else None)(
                [restarted.get(i) for i in ids]
            ),
            timeout=30,
            message="results delivered after reconnecting",
        )
    finally:
        restarted.close()
    for task in done:
        assert task.status == pb.COMPLETED, task
        assert task.attempt == 1, "the task must not have been rerun"
        assert f"finished-{task.name}" in task.output_tail


def test_a_task_no_worker_can_run_stays_pending_with_a_reason(
    client: harness.Client, start_worker: WorkerFactory
) -> None:
    start_worker("small", extra=("--cpu-cores=2",))
    wait_until(lambda: client.list_workers(), timeout=15, message="worker registered")
    [task_id] = client.submit(
        harness.submission("true", "too-big", cpu_cores=64, labels={"gpu": "a100"})
    )
    task = client.get(task_id)
    assert task.status == pb.PENDING
    assert "needs 64 cpu, the largest worker has 2" in task.pending_reason
    assert "gpu=a100" in task.pending_reason


def test_a_timeout_kills_the_whole_process_group(
    client: harness.Client, start_worker: WorkerFactory, state_dir: Path
) -> None:
    pid_file = state_dir / "grandchild.pid"
    start_worker("strict")
    [task_id] = client.submit(
        harness.submission(
            f"bash -c 'sleep 1000 & echo $! > {pid_file}; wait'", "sleeper", timeout_seconds=1.5
        )
    )
    task = wait_until(
        lambda: (lambda t: t if t.status in harness.FINAL else None)(client.get(task_id)),
        timeout=20,
        message="task timed out",
    )
    assert task.status == pb.TIMED_OUT
    grandchild = int(pid_file.read_text())
    wait_until(lambda: not harness.pid_alive(grandchild), timeout=5, message="grandchild gone")


def test_cancel_stops_the_running_process(
    client: harness.Client, start_worker: WorkerFactory, state_dir: Path
) -> None:
    from vahana.proto import task_service_pb2 as tasks_pb

    pid_file = state_dir / "cancel.pid"
    start_worker("obedient")
    [task_id] = client.submit(
        harness.submission(f"echo $$ > {pid_file}; exec sleep 1000", "cancel-me")
    )
    wait_until(
        lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=15, message="pid file"
    )
    pid = int(pid_file.read_text())
    reply = client.tasks.CancelTask(
        tasks_pb.CancelTaskRequest(id=task_id, reason="test"), timeout=5
    )
    assert reply.cancelled
    wait_until(lambda: client.status(task_id) == pb.CANCELLED, timeout=10, message="task cancelled")
    wait_until(lambda: not harness.pid_alive(pid), timeout=5, message="process gone")


def test_sigterm_drains_the_worker_and_it_leaves_the_pool(
    client: harness.Client, start_worker: WorkerFactory
) -> None:
    worker = start_worker("leaving")
    [task_id] = client.submit(harness.submission("sleep 1; echo drained", "last"))
    wait_until(lambda: client.status(task_id) == pb.RUNNING, timeout=15, message="running")
    assert worker.terminate(timeout=30) == 0
    task = client.get(task_id)
    assert task.status == pb.COMPLETED and "drained" in task.output_tail
    assert client.list_workers() == []
