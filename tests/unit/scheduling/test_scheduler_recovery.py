"""Recovery: a new Scheduler on the same store file rebuilds queue, leases and workers."""

from __future__ import annotations

import pathlib

import pytest
from builders import make_registration, make_task
from conftest import INTERVAL, SETTINGS
from drive import heartbeat, poll_ids, register, report, submit
from vahana.core import clock as clocks
from vahana.core import models
from vahana.scheduling import records, scheduler
from vahana.store import sqlite

P = models.TaskPhase
W = models.WorkerState


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "vahana.db"


@pytest.fixture
def opened() -> list[sqlite.SqliteStore]:
    return []


@pytest.fixture
def start(db, clock, opened):
    """Starts a scheduler on the file; each start has its own id prefix, like random ids."""

    def start_() -> scheduler.Scheduler:
        opened.append(sqlite.SqliteStore(db))
        return scheduler.Scheduler(
            opened[-1],
            settings=SETTINGS,
            clock=clock,
            new_task_id=clocks.counting_ids(f"s{len(opened)}-"),
        )

    yield start_
    for store in opened:
        store.close()


def restart(start) -> scheduler.Scheduler:
    new = start()
    new.recover()
    return new


def test_recovery_rebuilds_the_queue_in_order(start) -> None:
    first = start()
    low, high = submit(first, make_task("low"), make_task("high").priority(5))
    second = restart(start)
    assert second.queue_length == 2
    register(second, make_registration("w1").slots(5))
    assert poll_ids(second, "w1") == [high, low]


def test_leased_attempt_reports_are_accepted_after_recovery(start, clock) -> None:
    first = start()
    register(first, make_registration("w1").slots(2))
    a, b = submit(first, make_task("a"), make_task("b"))
    assert poll_ids(first, "w1") == [a, b]
    report(first, "w1", a, 1, P.RUNNING)
    clock.advance(5)
    second = restart(start)
    assert second.queue_length == 0
    [worker] = second.list_workers()
    assert worker.leases == {a: 1, b: 1} and worker.state == W.BUSY
    assert report(second, "w1", a, 1, P.COMPLETED, exit_code=0).accepted
    assert report(second, "w1", b, 1, P.RUNNING).accepted
    assert report(second, "w1", b, 2, P.COMPLETED).stale
    assert second.get_task(a).phase == P.COMPLETED and second.get_task(b).phase == P.RUNNING


def test_submission_order_continues_after_recovery(start, opened) -> None:
    first = start()
    submit(first, make_task("a"), make_task("b"))
    second = restart(start)
    [c] = submit(second, make_task("c"))
    assert opened[-1].get_task(c).seq == 3
    register(second, make_registration("w1").slots(5))
    assert [second.get_task(t).spec.name for t in poll_ids(second, "w1")] == ["a", "b", "c"]


def test_idempotency_keys_survive_a_restart(start) -> None:
    first = start()
    [a] = submit(first, make_task("a").key("uid"))
    second = restart(start)
    assert submit(second, make_task("a").key("uid")) == [a]
    assert second.queue_length == 1


def test_tasks_of_a_vanished_worker_are_requeued_on_recovery(start, opened) -> None:
    first = start()
    register(first, make_registration("w1"))
    [a] = submit(first, make_task("a").retries(infra=2, backoff=0))
    poll_ids(first, "w1")
    opened[-1].delete_workers(["w1"])  # as if removed while the record was not yet updated
    second = restart(start)
    task = second.get_task(a)
    assert (task.phase, task.infra_failures, task.worker_id) == (P.PENDING, 1, "")
    assert "worker w1 is gone" in opened[-1].list_attempts(a)[0].message
    assert second.queue_length == 1


def test_tasks_of_an_unhealthy_worker_are_requeued_on_recovery(start, clock) -> None:
    first = start()
    register(first, make_registration("w1"))
    [a] = submit(first, make_task("a").retries(infra=2, backoff=0))
    poll_ids(first, "w1")
    first.set_worker_status("w1", W.UNHEALTHY)
    second = restart(start)
    assert second.get_task(a).phase == P.PENDING
    clock.advance(SETTINGS.removal_after_unhealthy_seconds)
    second.check_health()
    assert second.list_workers() == []


def test_known_workers_get_the_silence_limit_and_one_interval_to_reconnect(start, clock) -> None:
    first = start()
    register(first, make_registration("w1"), make_registration("w2"))
    [a, b] = submit(first, *(make_task(n).retries(infra=2, backoff=0) for n in "ab"))
    assert poll_ids(first, "w1") == [a] and poll_ids(first, "w2") == [b]
    clock.advance(10 * INTERVAL)  # the scheduler was down for long
    second = restart(start)
    grace = SETTINGS.silence_limit_seconds + INTERVAL  # derived from the heartbeat settings
    assert SETTINGS.recovery_grace == grace == 40.0
    clock.advance(grace - INTERVAL / 2)
    heartbeat(second, "w2", (b, 1))  # a live worker: heard well within the grace
    second.check_health()
    assert {w.id: w.state for w in second.list_workers()} == {"w1": W.BUSY, "w2": W.BUSY}
    clock.advance(INTERVAL / 2)
    second.check_health()
    assert {w.id: w.state for w in second.list_workers()} == {"w1": W.UNHEALTHY, "w2": W.BUSY}
    assert second.get_task(a).phase == P.PENDING  # the dead worker's task runs again
    assert second.get_task(b).phase == P.ASSIGNED  # the live worker's keeps running


def test_the_recovery_grace_follows_the_heartbeat_settings() -> None:
    def grace(**fields: float) -> float:
        return records.SchedulerSettings(**fields).recovery_grace  # type: ignore[arg-type]

    assert grace() == 120.0  # 30 s × (3 missed + 1)
    assert grace(heartbeat_interval_seconds=1.0, missed_heartbeats=3) == 4.0
    assert grace(heartbeat_interval_seconds=5.0, missed_heartbeats=2) == 15.0
    # Set: longer only, never less than a live worker needs to be heard.
    assert grace(heartbeat_interval_seconds=1.0, recovery_grace_seconds=60.0) == 60.0
    assert grace(heartbeat_interval_seconds=1.0, recovery_grace_seconds=2.0) == 4.0


def test_backoff_survives_recovery(start, clock) -> None:
    first = start()
    register(first, make_registration("w1"))
    [a] = submit(first, make_task("a").retries(task=1, backoff=30))
    poll_ids(first, "w1")
    report(first, "w1", a, 1, P.FAILED)
    second = restart(start)
    assert second.next_timer() == clock.now + 30
    assert poll_ids(second, "w1") == []
    clock.advance(30)
    assert poll_ids(second, "w1") == [a]


def test_cancel_requested_before_restart_still_reaches_the_worker(start) -> None:
    first = start()
    register(first, make_registration("w1"))
    [a] = submit(first, make_task("a"))
    poll_ids(first, "w1")
    first.cancel(a)
    second = restart(start)
    assert heartbeat(second, "w1", (a, 1)).cancels == [(a, 1)]
    report(second, "w1", a, 1, P.CANCELLED)
    assert second.get_task(a).phase == P.CANCELLED


def test_finished_tasks_are_not_recovered(start) -> None:
    first = start()
    register(first, make_registration("w1"))
    [a] = submit(first, make_task("a"))
    poll_ids(first, "w1")
    report(first, "w1", a, 1, P.COMPLETED)
    second = restart(start)
    assert second.queue_length == 0 and second.list_workers()[0].leases == {}
    assert second.get_task(a).phase == P.COMPLETED
    assert report(second, "w1", a, 1, P.COMPLETED).accepted  # a replay stays harmless


def test_a_worker_told_to_drain_is_still_told_after_a_restart(start) -> None:
    first = start()
    register(first, make_registration("w1"))
    first.request_drain("w1")
    second = start()
    second.recover()
    result = second.poll("w1", 1)
    assert result.drain and not result.tasks
