"""Black-hole workers: quarantined after a streak of failures in the worker, refused after."""

from __future__ import annotations

import pytest
from builders import make_registration, make_task
from drive import poll_ids, register, report, submit
from vahana.core import models
from vahana.scheduling import records, scheduler
from vahana.store import sqlite

P = models.TaskPhase
W = models.WorkerState
INFRA = models.FailureKind.INFRASTRUCTURE


def fail_in_worker(sched, worker_id: str, task_id: str, attempt: int) -> None:
    report(
        sched, worker_id, task_id, attempt, P.FAILED, failure_kind=INFRA,
        message="worker error: [Errno 30] Read-only file system",
    )  # fmt: skip


def black_hole(sched, clock, worker_id: str, count: int) -> list[str]:
    """The worker takes tasks one at a time and fails each in the worker; returns them."""
    failed = []
    for _ in range(count):
        [task_id] = poll_ids(sched, worker_id, 1)
        fail_in_worker(sched, worker_id, task_id, sched.get_task(task_id).attempt)
        failed.append(task_id)
        clock.advance(0.5)
    return failed


def test_five_failures_in_the_worker_quarantine_it_and_no_task_spends_its_budget(
    sched, store, clock
) -> None:
    register(sched, make_registration("bad").slots(1), make_registration("good").slots(1))
    ids = submit(sched, *(make_task(f"t{i}").retries(infra=3, backoff=5) for i in range(8)))
    failed = black_hole(sched, clock, "bad", 5)
    [bad] = [w for w in sched.list_workers() if w.id == "bad"]
    assert bad.state == W.UNHEALTHY
    assert bad.quarantine_reason.startswith("quarantined: its last 5 attempts failed")
    assert "Read-only file system" in bad.quarantine_reason
    # No more tasks for it; it is refused if it registers again under its id.
    with pytest.raises(records.UnknownWorker):
        sched.poll("bad", 1)
    with pytest.raises(records.WorkerQuarantined, match="quarantined"):
        sched.register(make_registration("bad").slots(1).registration())
    # With the default three infrastructure retries, every task it failed is still queued with
    # its budget intact (the streak's charges were given back), and runs on the good worker.
    for task_id in failed:
        task = sched.get_task(task_id)
        assert (task.phase, task.infra_failures) == (P.PENDING, 0), task_id
    done = set()
    while len(done) < len(ids):
        taken = poll_ids(sched, "good", 1)
        if not taken:  # the rest wait out their retry backoff
            clock.advance(5)
            continue
        [task_id] = taken
        report(sched, "good", task_id, sched.get_task(task_id).attempt, P.COMPLETED, exit_code=0)
        done.add(task_id)
    assert {store.get_task(i).phase for i in ids} == {P.COMPLETED}
    # The quarantine is kept by the store: a restarted scheduler still refuses the worker.
    assert [w.quarantine_reason for w in store.load_workers() if w.id == "bad"] == [
        bad.quarantine_reason
    ]


def test_a_quarantined_worker_stays_refused_after_a_restart(store, clock) -> None:
    first = scheduler.Scheduler(store, clock=clock)
    register(first, make_registration("bad").slots(1))
    submit(first, *(make_task(f"t{i}") for i in range(5)))
    black_hole(first, clock, "bad", 5)
    again = scheduler.Scheduler(store, clock=clock)
    again.recover()
    with pytest.raises(records.WorkerQuarantined):
        again.register(make_registration("bad").slots(1).registration())


def test_slow_or_interrupted_failures_do_not_quarantine(sched, clock) -> None:
    register(sched, make_registration("w").slots(1))
    submit(sched, *(make_task(f"t{i}").retries(infra=9, backoff=0) for i in range(12)))
    black_hole(sched, clock, "w", 4)
    [task_id] = poll_ids(sched, "w", 1)
    report(sched, "w", task_id, sched.get_task(task_id).attempt, P.COMPLETED, exit_code=0)
    black_hole(sched, clock, "w", 4)  # a success ended the streak: 4 again, not 8
    clock.advance(120)
    black_hole(sched, clock, "w", 1)  # outside the window of the first four
    assert [w.state for w in sched.list_workers()] == [W.AVAILABLE]


def test_the_tasks_a_quarantined_worker_held_run_elsewhere_without_a_charge(sched, clock) -> None:
    register(sched, make_registration("bad").slots(2))
    ids = submit(sched, *(make_task(f"t{i}").retries(infra=3, backoff=5) for i in range(6)))
    [held] = poll_ids(sched, "bad", 1)
    for _ in range(5):  # with one task held, five others fail in the worker
        [task_id] = poll_ids(sched, "bad", 1)
        fail_in_worker(sched, "bad", task_id, sched.get_task(task_id).attempt)
    task = sched.get_task(held)
    assert (task.phase, task.infra_failures) == (P.PENDING, 0)
    assert "quarantined" in task.message
    assert {sched.get_task(i).phase for i in ids} == {P.PENDING}


def test_a_draining_worker_s_failures_do_not_count(sched, clock) -> None:
    register(sched, make_registration("w").slots(5))
    ids = submit(sched, *(make_task(f"t{i}").retries(infra=3, backoff=0) for i in range(5)))
    assert poll_ids(sched, "w", 5) == ids
    sched.set_worker_status("w", W.DRAINING, "received SIGTERM")
    for task_id in ids:  # what a worker does with its tasks when it stops
        fail_in_worker(sched, "w", task_id, 1)
    [worker] = sched.list_workers()
    assert worker.state == W.DRAINING and not worker.quarantine_reason


def test_quarantine_can_be_turned_off(store, clock) -> None:
    settings = records.SchedulerSettings(quarantine_failures=0)
    sched = scheduler.Scheduler(sqlite.SqliteStore(":memory:"), settings=settings, clock=clock)
    register(sched, make_registration("w").slots(1))
    submit(sched, *(make_task(f"t{i}").retries(infra=9, backoff=0) for i in range(10)))
    black_hole(sched, clock, "w", 10)
    assert [w.state for w in sched.list_workers()] == [W.AVAILABLE]


def test_a_quarantined_worker_is_kept_and_refused_for_the_quarantine_time(sched, clock) -> None:
    register(sched, make_registration("bad").slots(1))
    submit(sched, *(make_task(f"t{i}") for i in range(5)))
    black_hole(sched, clock, "bad", 5)
    sched.set_worker_status("bad", W.TERMINATED, "exiting")  # what it says as it gives up
    clock.advance(sched.settings.quarantine_seconds - 1)
    sched.check_health()
    [worker] = sched.list_workers()
    assert worker.state == W.UNHEALTHY and worker.quarantine_reason
    clock.advance(1)
    sched.check_health()
    assert sched.list_workers() == []
    sched.register(make_registration("bad").slots(1).registration())  # welcome again
