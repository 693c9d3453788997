"""Scheduler and workers: health, heartbeat reconciliation, re-registration, drain, termination."""

from __future__ import annotations

import faulty as faulty_store
import pytest
from builders import make_registration, make_task
from conftest import INTERVAL
from drive import heartbeat, poll_ids, register, report, submit
from vahana.core import models
from vahana.scheduling import records
from vahana.store import base

P = models.TaskPhase
W = models.WorkerState
SILENCE = 3 * INTERVAL


def dispatched(sched, *tasks, worker: str = "w1", slots: int = 10) -> list[str]:
    register(sched, make_registration(worker).slots(slots))
    ids = submit(sched, *tasks)
    assert poll_ids(sched, worker) == ids
    return ids


def worker_state(sched, worker_id: str) -> W | None:
    found = [w.state for w in sched.list_workers() if w.id == worker_id]
    return found[0] if found else None


# -- health --------------------------------------------------------------------------------
def test_silent_worker_turns_unhealthy_after_missed_heartbeats(sched, clock, store) -> None:
    [a] = dispatched(sched, make_task("a").retries(infra=3, backoff=0), slots=1)
    clock.advance(SILENCE - 0.1)
    sched.check_health()
    assert worker_state(sched, "w1") == W.BUSY
    clock.advance(0.1)
    sched.check_health()
    assert worker_state(sched, "w1") == W.UNHEALTHY
    task = sched.get_task(a)
    assert (task.phase, task.worker_id, task.infra_failures) == (P.PENDING, "", 1)
    assert "lost: no heartbeat for 30s" in store.list_attempts(a)[0].message
    assert {w.id: w.state for w in store.load_workers()}["w1"] == W.UNHEALTHY


def test_requeued_task_gets_a_new_attempt_and_refuses_the_old_one(sched, clock) -> None:
    [a] = dispatched(sched, make_task("a").retries(infra=3, backoff=0))
    clock.advance(SILENCE)
    sched.check_health()
    register(sched, make_registration("w2"))
    assert poll_ids(sched, "w2") == [a]
    assert sched.get_task(a).attempt == 2
    assert report(sched, "w1", a, 1, P.COMPLETED).stale
    assert report(sched, "w2", a, 2, P.COMPLETED).accepted


def test_heartbeats_and_polls_keep_a_worker_healthy(sched, clock) -> None:
    register(sched, make_registration("w1"), make_registration("w2"))
    for _ in range(5):
        clock.advance(INTERVAL)
        heartbeat(sched, "w1")
        sched.poll("w2", 1)
        sched.check_health()
    assert {w.state for w in sched.list_workers()} == {W.AVAILABLE}


def test_unhealthy_worker_is_told_to_register_again(sched, clock) -> None:
    register(sched, make_registration("w1"))
    clock.advance(SILENCE)
    sched.check_health()
    assert heartbeat(sched, "w1").reregister
    with pytest.raises(records.UnknownWorker):
        sched.poll("w1", 1)
    register(sched, make_registration("w1"))
    assert worker_state(sched, "w1") == W.AVAILABLE


def test_unhealthy_worker_is_removed_after_the_removal_delay(sched, clock, store) -> None:
    register(sched, make_registration("w1"))
    clock.advance(SILENCE)
    sched.check_health()
    clock.advance(59)
    sched.check_health()
    assert worker_state(sched, "w1") == W.UNHEALTHY
    clock.advance(1)
    sched.check_health()
    assert worker_state(sched, "w1") is None
    assert store.load_workers() == []
    assert heartbeat(sched, "w1").reregister


def test_worker_reporting_itself_unhealthy_does_not_break_health_checks(sched, clock) -> None:
    [a] = dispatched(sched, make_task("a").retries(infra=3, backoff=0))
    sched.set_worker_status("w1", W.UNHEALTHY, "disk full")
    sched.check_health()  # used to fail an assertion: no unhealthy_since
    assert worker_state(sched, "w1") == W.UNHEALTHY
    clock.advance(60)
    sched.check_health()
    assert worker_state(sched, "w1") is None
    assert sched.get_task(a).phase == P.PENDING


def test_health_check_promotes_tasks_whose_backoff_ended(sched, clock) -> None:
    [a] = dispatched(sched, make_task("a").retries(task=1, backoff=5))
    report(sched, "w1", a, 1, P.FAILED)
    woken: list[str | None] = []
    sched.set_waker(woken.append)
    clock.advance(5)
    sched.check_health()
    assert None in woken and sched.next_timer() is None


# -- heartbeat reconciliation --------------------------------------------------------------
def test_task_missing_from_heartbeats_past_the_grace_is_requeued(sched, clock, store) -> None:
    [a, b] = dispatched(sched, make_task("a").retries(infra=3, backoff=0), make_task("b"))
    clock.advance(2 * INTERVAL)  # the default grace: two intervals
    heartbeat(sched, "w1", (b, 1))
    assert sched.get_task(a).phase == P.ASSIGNED
    clock.advance(0.1)
    heartbeat(sched, "w1", (b, 1))
    task = sched.get_task(a)
    assert (task.phase, task.infra_failures) == (P.PENDING, 1)
    assert "no longer holds it" in store.list_attempts(a)[0].message
    assert sched.get_task(b).phase == P.ASSIGNED
    assert poll_ids(sched, "w1") == [a] and sched.get_task(a).attempt == 2


def test_heartbeat_with_an_old_attempt_counts_as_missing(sched, clock) -> None:
    [a] = dispatched(sched, make_task("a").retries(infra=3, backoff=0))
    clock.advance(3 * INTERVAL)
    result = heartbeat(sched, "w1", (a, 7))
    assert result.cancels == [(a, 7)]
    assert sched.get_task(a).phase == P.PENDING


def test_heartbeat_cancels_tasks_the_worker_should_not_run(sched) -> None:
    [a] = dispatched(sched, make_task("a"))
    result = heartbeat(sched, "w1", (a, 1), ("unknown", 1))
    assert result.cancels == [("unknown", 1)]
    assert not result.reregister and not result.drain


# -- registration --------------------------------------------------------------------------
def test_reregistering_with_running_leases_renews_them(sched, store) -> None:
    a, b = dispatched(sched, make_task("a"), make_task("b").retries(infra=3, backoff=0))
    report(sched, "w1", a, 1, P.RUNNING)
    revoked = sched.register(
        make_registration("w1").slots(10).running((a, 1), ("stranger", 4)).registration()
    )
    assert revoked == [("stranger", 4)]
    [worker] = sched.list_workers()
    assert worker.leases == {a: 1}
    assert sched.get_task(a).phase == P.RUNNING
    # b was held by the previous incarnation and not reported: it died with it.
    assert sched.get_task(b).phase == P.PENDING
    assert "restarted without it" in store.list_attempts(b)[0].message
    assert report(sched, "w1", a, 1, P.COMPLETED).accepted


def test_registration_revokes_a_lease_with_the_wrong_attempt(sched) -> None:
    [a] = dispatched(sched, make_task("a").retries(infra=3, backoff=0))
    revoked = sched.register(make_registration("w1").running((a, 2)).registration())
    assert revoked == [(a, 2)]
    assert sched.get_task(a).phase == P.PENDING


def test_registration_revokes_another_workers_lease(sched) -> None:
    [a] = dispatched(sched, make_task("a"))
    revoked = sched.register(make_registration("w2").running((a, 1)).registration())
    assert revoked == [(a, 1)]
    assert sched.get_task(a).worker_id == "w1"


def test_registration_is_saved(sched, store) -> None:
    register(sched, make_registration("w1").cpu(8).slots(3).pool("p"))
    [saved] = store.load_workers()
    assert (saved.id, saved.capacity.cpu_cores, saved.max_tasks, saved.pool) == ("w1", 8, 3, "p")


# -- drain and termination -----------------------------------------------------------------
def test_drain_stops_handing_out_tasks_and_is_announced(sched, store) -> None:
    [a] = dispatched(sched, make_task("a"))
    submit(sched, make_task("b"))
    sched.request_drain("w1")
    assert worker_state(sched, "w1") == W.DRAINING
    result = sched.poll("w1", 5)
    assert result.drain and result.tasks == []
    assert heartbeat(sched, "w1", (a, 1)).drain
    assert report(sched, "w1", a, 1, P.COMPLETED).accepted
    assert {w.id: w.state for w in store.load_workers()}["w1"] == W.DRAINING


def test_terminated_worker_is_removed_and_its_tasks_requeued(sched, store) -> None:
    a, b = dispatched(sched, make_task("a").retries(infra=1), make_task("b").retries(infra=0))
    sched.set_worker_status("w1", W.TERMINATED, "scaled down")
    assert worker_state(sched, "w1") is None and store.load_workers() == []
    assert sched.get_task(a).phase == P.PENDING
    failed = store.get_task(b)
    assert failed.phase == P.FAILED and "worker w1 terminated scaled down" in failed.message
    with pytest.raises(records.UnknownWorker):
        sched.set_worker_status("w1", W.AVAILABLE)


def test_terminated_worker_drops_its_unsent_cancels(sched) -> None:
    [a] = dispatched(sched, make_task("a"))
    sched.cancel(a)
    sched.set_worker_status("w1", W.TERMINATED)
    assert sched.get_task(a).phase == P.CANCELLED
    register(sched, make_registration("w1"))
    assert sched.poll("w1", 0).cancels == []


def test_wakers_hear_of_new_work(sched) -> None:
    woken: list[str | None] = []
    sched.set_waker(woken.append)
    register(sched, make_registration("w1"))
    submit(sched, make_task("a"))
    assert woken == ["w1", None]


def test_a_freed_slot_wakes_its_worker_unless_the_same_call_filled_it(sched) -> None:
    register(sched, make_registration("w1"))
    a, b, c = submit(sched, make_task("a"), make_task("b"), make_task("c"))
    assert poll_ids(sched, "w1", max_tasks=1) == [a]
    woken: list[str | None] = []
    sched.set_waker(woken.append)

    # The report that ends a lease and brings the next task: the worker is full again, its
    # long poll held for zero tasks is left alone.
    results, handed_out = sched.report_and_poll(
        "w1", [records.StatusReport(a, 1, P.COMPLETED)], max_tasks=1
    )
    assert [r.accepted for r in results] == [True]
    assert [t.id for t in handed_out.tasks] == [b]
    assert woken == []

    # A report alone frees the slot: the waiting poll is woken to ask for a task.
    report(sched, "w1", b, 1, P.COMPLETED)
    assert woken == ["w1"]
    assert sched.free_slots("w1") == 1 and sched.get_task(c).phase == P.PENDING


def test_report_and_poll_judges_reports_of_an_unknown_worker_and_hands_out_nothing(sched) -> None:
    register(sched, make_registration("w1"))
    [a] = submit(sched, make_task("a"))
    assert poll_ids(sched, "w1", max_tasks=1) == [a]
    results, handed_out = sched.report_and_poll(
        "ghost", [records.StatusReport(a, 1, P.COMPLETED)], max_tasks=1
    )
    assert [r.accepted for r in results] == [False]
    assert handed_out.tasks == [] and sched.get_task(a).phase == P.ASSIGNED


def test_a_report_and_the_poll_after_it_are_one_unit_of_work(sched, store, events) -> None:
    register(sched, make_registration("w1"))
    a, b = submit(sched, make_task("a"), make_task("b"))
    assert poll_ids(sched, "w1", max_tasks=1) == [a]
    faulty = faulty_store.FaultyStore(store)
    sched._store = sched._pipeline._store = faulty
    told = len(events)

    faulty.arm(faulty_store.AT_COMMIT)
    with pytest.raises(base.StoreUnavailable, match="disk full"):
        sched.report_and_poll("w1", [records.StatusReport(a, 1, P.COMPLETED)], max_tasks=1)
    # Neither the report nor the hand-out happened, and nobody was told of either.
    assert len(events) == told
    assert (sched.get_task(a).phase, sched.get_task(b).phase) == (P.ASSIGNED, P.PENDING)
    assert sched.list_workers()[0].leases == {a: 1}

    # The worker sends the same batch again: both happen, once.
    results, handed_out = sched.report_and_poll(
        "w1", [records.StatusReport(a, 1, P.COMPLETED)], max_tasks=1
    )
    assert results[0].accepted and [t.id for t in handed_out.tasks] == [b]
    assert events[told:] == [(a, P.COMPLETED), (b, P.ASSIGNED)]
