"""Scheduler: submit, poll (what a worker gets), reports, retries, cancel, listeners, reasons."""

from __future__ import annotations

import pytest
from builders import GiB, make_registration, make_task
from drive import heartbeat, poll_ids, register, report, submit
from vahana.core import models
from vahana.scheduling import records

P = models.TaskPhase


# -- submit --------------------------------------------------------------------------------
def test_submit_stores_pending_tasks_in_order(sched, store) -> None:
    ids = submit(sched, make_task("a"), make_task("b"))
    assert ids == ["t-000001", "t-000002"]
    assert [(t.spec.name, t.phase, t.seq) for t in store.list_tasks()] == [
        ("a", P.PENDING, 1),
        ("b", P.PENDING, 2),
    ]
    assert sched.queue_length == 2


def test_submit_with_a_known_key_returns_the_existing_task(sched, store) -> None:
    [first] = submit(sched, make_task("a").key("uid-1"))
    again = submit(
        sched,
        make_task("a").key("uid-1"),
        make_task("b").key("uid-2"),
        make_task("b-dup").key("uid-2"),
    )
    assert again[0] == first
    assert again[1] == again[2] != first
    assert len(store.list_tasks()) == 2 and sched.queue_length == 2


def test_get_task_by_id_or_unique_name(sched) -> None:
    [a] = submit(sched, make_task("alpha"))
    twins = submit(sched, make_task("twin"), make_task("twin"))
    assert sched.get_task(a).spec.name == "alpha"
    assert sched.get_task("alpha").id == a
    with pytest.raises(records.AmbiguousTaskName, match="2 tasks are named 'twin'") as caught:
        sched.get_task("twin")
    # Which ones, so that the user can give an id.
    assert f"{twins[0]} (PENDING), {twins[1]} (PENDING) — give the task id" in str(caught.value)
    with pytest.raises(records.UnknownTask) as unknown:
        sched.get_task("nothing")
    assert not isinstance(unknown.value, records.AmbiguousTaskName)


# -- poll ----------------------------------------------------------------------------------
def test_poll_hands_out_up_to_max_tasks_in_queue_order(sched) -> None:
    register(sched, make_registration("w1").slots(10))
    low, high, mid = submit(
        sched, make_task("low"), make_task("high").priority(9), make_task("mid").priority(5)
    )
    assert poll_ids(sched, "w1", max_tasks=2) == [high, mid]
    assert poll_ids(sched, "w1", max_tasks=2) == [low]


def test_poll_marks_tasks_assigned_with_a_first_attempt(sched, store) -> None:
    register(sched, make_registration("w1"))
    [a] = submit(sched, make_task("a"))
    [task] = sched.poll("w1", 1).tasks
    assert (task.phase, task.attempt, task.worker_id) == (P.ASSIGNED, 1, "w1")
    stored = store.get_task(a)
    assert (stored.phase, stored.attempt, stored.worker_id) == (P.ASSIGNED, 1, "w1")
    assert [(x.attempt, x.worker_id) for x in store.list_attempts(a)] == [(1, "w1")]


def test_poll_respects_the_workers_slots(sched) -> None:
    register(sched, make_registration("w1").slots(2))
    submit(sched, *(make_task(f"t{i}") for i in range(5)))
    assert len(poll_ids(sched, "w1", 10)) == 2
    assert poll_ids(sched, "w1", 10) == []
    assert sched.list_workers()[0].state == models.WorkerState.BUSY


def test_poll_respects_cpu_memory_and_gpus_of_held_tasks(sched) -> None:
    register(sched, make_registration("w1").cpu(4).memory(8 * GiB).gpus(1).slots(10))
    big, small, gpu, gpu2, mem = submit(
        sched,
        make_task("big").cpu(3),
        make_task("small").cpu(1),
        make_task("gpu").gpus(1),
        make_task("gpu2").gpus(1),
        make_task("mem").memory(9 * GiB),
    )
    assert poll_ids(sched, "w1") == [big, small, gpu]
    assert poll_ids(sched, "w1") == []  # cpu full, gpu taken, memory too large


def test_a_full_cpu_worker_with_free_slots_gets_no_more_cpu_tasks(sched) -> None:
    # Regression: free cpu of 0 was read as "undeclared".
    register(sched, make_registration("w1").cpu(4).slots(2))
    first, second = submit(sched, make_task("a").cpu(4), make_task("b").cpu(4))
    assert poll_ids(sched, "w1") == [first]
    assert poll_ids(sched, "w1") == []


def test_poll_skips_a_head_the_worker_cannot_fit_for_a_smaller_task(sched) -> None:
    register(sched, make_registration("small").cpu(2))
    big, little = submit(sched, make_task("big").cpu(8).priority(9), make_task("little").cpu(1))
    assert poll_ids(sched, "small") == [little]
    assert sched.get_task(big).phase == P.PENDING


def test_poll_respects_labels_and_pool(sched) -> None:
    register(
        sched,
        make_registration("eu").labels(zone="eu").pool("cpu").slots(10),
        make_registration("us").labels(zone="us").pool("gpu").slots(10),
    )
    eu, pooled, anywhere = submit(
        sched,
        make_task("eu").labels(zone="eu"),
        make_task("gpu-pool").pool("gpu"),
        make_task("any"),
    )
    assert poll_ids(sched, "us") == [pooled, anywhere]
    assert poll_ids(sched, "eu") == [eu]


def test_poll_keeps_tasks_that_would_outlive_the_allocation(sched, clock) -> None:
    register(sched, make_registration("w1").allocation_ends_at(clock.now + 100).slots(5))
    long_, fits, default = submit(
        sched, make_task("long").timeout(101), make_task("fits").timeout(100), make_task("default")
    )
    assert poll_ids(sched, "w1") == [fits, default]
    assert "allocation lasts the task's 101s timeout" in sched.pending_reason(sched.get_task(long_))


def test_poll_prefers_tasks_whose_preferred_labels_the_worker_has(sched) -> None:
    register(sched, make_registration("w1").labels(rack="r1"))
    other, local = submit(
        sched, make_task("other").prefer(rack="r2"), make_task("local").prefer(rack="r1")
    )
    assert poll_ids(sched, "w1", 1) == [local]


def test_poll_by_an_unknown_worker_asks_it_to_register(sched) -> None:
    with pytest.raises(records.UnknownWorker):
        sched.poll("ghost", 1)


def test_poll_with_zero_max_tasks_hands_out_nothing(sched) -> None:
    register(sched, make_registration("w1"))
    submit(sched, make_task("a"))
    assert not sched.poll("w1", 0)


# -- reports -------------------------------------------------------------------------------
def dispatched(sched, *tasks, worker: str = "w1") -> list[str]:
    register(sched, make_registration(worker).slots(10))
    ids = submit(sched, *tasks)
    assert poll_ids(sched, worker) == ids
    return ids


def test_running_then_completed(sched, store, clock) -> None:
    [a] = dispatched(sched, make_task("a"))
    assert report(sched, "w1", a, 1, P.RUNNING, timestamp=clock.now + 1).accepted
    assert store.get_task(a).phase == P.RUNNING and store.get_task(a).started_at == clock.now + 1
    clock.advance(5)
    result = report(sched, "w1", a, 1, P.COMPLETED, exit_code=0, output_tail="done")
    assert result.accepted and not result.cancel
    task = store.get_task(a)
    assert (task.phase, task.exit_code, task.output_tail, task.finished_at) == (
        P.COMPLETED,
        0,
        "done",
        clock.now,
    )
    assert [x.phase for x in store.list_attempts(a)] == [P.COMPLETED]
    assert sched.list_workers()[0].leases == {}


def test_duplicate_final_report_is_acknowledged_and_changes_nothing(sched, store) -> None:
    [a] = dispatched(sched, make_task("a"))
    report(sched, "w1", a, 1, P.COMPLETED, exit_code=0)
    again = report(sched, "w1", a, 1, P.COMPLETED, exit_code=0)
    assert again.accepted and not again.stale
    changed = report(sched, "w1", a, 1, P.FAILED, exit_code=1)
    assert not changed.accepted
    assert store.get_task(a).phase == P.COMPLETED and store.get_task(a).exit_code == 0


def test_stale_attempt_is_refused_and_the_task_unchanged(sched, store, clock) -> None:
    [a] = dispatched(sched, make_task("a").retries(infra=3, backoff=0))
    sched.set_worker_status("w1", models.WorkerState.TERMINATED)  # attempt 1 is lost
    register(sched, make_registration("w1"))
    assert poll_ids(sched, "w1") == [a]
    before = store.get_task(a)
    assert before.attempt == 2
    result = report(sched, "w1", a, 1, P.COMPLETED, exit_code=0)
    assert not result.accepted and result.stale
    assert store.get_task(a) == before


def test_report_from_another_worker_is_refused(sched, store) -> None:
    [a] = dispatched(sched, make_task("a"))
    result = report(sched, "intruder", a, 1, P.COMPLETED)
    assert result.stale and store.get_task(a).phase == P.ASSIGNED


def test_reports_in_one_call_are_judged_separately(sched, store) -> None:
    a, b = dispatched(sched, make_task("a"), make_task("b"))
    results = sched.report(
        "w1", [records.StatusReport(a, 9, P.COMPLETED), records.StatusReport(b, 1, P.COMPLETED)]
    )
    assert [r.accepted for r in results] == [False, True]
    assert store.get_task(b).phase == P.COMPLETED


def test_task_failure_retries_with_backoff_then_fails(sched, store, clock) -> None:
    [a] = dispatched(sched, make_task("a").retries(task=2, backoff=10, max_backoff=100))
    report(sched, "w1", a, 1, P.FAILED, exit_code=1, message="exit 1")
    task = sched.get_task(a)
    assert (task.phase, task.task_failures, task.not_before) == (P.PENDING, 1, clock.now + 10)
    assert poll_ids(sched, "w1") == []  # still backing off
    assert sched.next_timer() == clock.now + 10
    assert sched.pending_reason(task).startswith("retry backoff until")
    clock.advance(10)
    assert poll_ids(sched, "w1") == [a]
    report(sched, "w1", a, 2, P.FAILED, exit_code=1)
    assert sched.get_task(a).not_before == clock.now + 20  # doubled
    clock.advance(20)
    assert poll_ids(sched, "w1") == [a]
    report(sched, "w1", a, 3, P.FAILED, exit_code=3, message="exit 3")
    final = store.get_task(a)
    assert (final.phase, final.exit_code, final.attempt) == (P.FAILED, 3, 3)
    assert "task retries exhausted (2 of 2 used)" in final.message
    assert [x.failure_kind for x in store.list_attempts(a)] == [models.FailureKind.TASK_ERROR] * 3


def test_timed_out_without_retries_ends_timed_out(sched, store) -> None:
    [a] = dispatched(sched, make_task("a"))
    report(sched, "w1", a, 1, P.TIMED_OUT)
    assert store.get_task(a).phase == P.TIMED_OUT


def test_infrastructure_failure_spends_the_infra_budget_only(sched, store, clock) -> None:
    [a] = dispatched(sched, make_task("a").retries(task=0, infra=1, backoff=0))
    report(sched, "w1", a, 1, P.FAILED, failure_kind=models.FailureKind.INFRASTRUCTURE)
    task = sched.get_task(a)
    assert (task.phase, task.infra_failures, task.task_failures) == (P.PENDING, 1, 0)
    assert poll_ids(sched, "w1") == [a]
    report(sched, "w1", a, 2, P.FAILED, failure_kind=models.FailureKind.INFRASTRUCTURE)
    final = store.get_task(a)
    assert final.phase == P.FAILED and "infrastructure retries exhausted" in final.message


# -- cancel --------------------------------------------------------------------------------
def test_cancel_pending_task_is_final_at_once(sched, store) -> None:
    [a] = submit(sched, make_task("a"))
    assert sched.cancel(a, "no longer needed") == (True, P.CANCELLED)
    assert store.get_task(a).phase == P.CANCELLED
    assert store.get_task(a).message == "cancelled: no longer needed"
    assert sched.queue_length == 0
    assert sched.cancel(a) == (False, P.CANCELLED)


def test_cancel_delayed_task_removes_it_from_the_backoff(sched, store, clock) -> None:
    [a] = dispatched(sched, make_task("a").retries(task=1, backoff=5))
    report(sched, "w1", a, 1, P.FAILED)
    sched.cancel(a)
    clock.advance(10)
    assert poll_ids(sched, "w1") == [] and store.get_task(a).phase == P.CANCELLED


def test_cancel_running_is_delivered_by_poll_and_heartbeat(sched, store) -> None:
    [a] = dispatched(sched, make_task("a"))
    report(sched, "w1", a, 1, P.RUNNING)
    assert sched.cancel(a) == (True, P.RUNNING)
    assert sched.poll("w1", 0).cancels == [(a, 1)]
    assert sched.poll("w1", 0).cancels == []  # sent once by poll ...
    assert heartbeat(sched, "w1", (a, 1)).cancels == [(a, 1)]  # ... and again while running
    assert report(sched, "w1", a, 1, P.RUNNING).cancel
    report(sched, "w1", a, 1, P.CANCELLED)
    assert store.get_task(a).phase == P.CANCELLED


def test_cancelled_task_that_fails_ends_cancelled_not_retried(sched, store) -> None:
    [a] = dispatched(sched, make_task("a").retries(task=5))
    sched.cancel(a)
    report(sched, "w1", a, 1, P.FAILED, exit_code=143)
    assert store.get_task(a).phase == P.CANCELLED and sched.queue_length == 0


# -- listeners and reasons -----------------------------------------------------------------
def test_listeners_see_every_transition(sched, events) -> None:
    [a] = dispatched(sched, make_task("a"))
    report(sched, "w1", a, 1, P.RUNNING)
    report(sched, "w1", a, 1, P.COMPLETED)
    phases = [phase for task_id, phase in events if task_id == a]
    assert phases[:3] == [P.PENDING, P.ASSIGNED, P.RUNNING]
    assert set(phases[3:]) == {P.COMPLETED}


def test_each_transition_is_emitted_once(sched, events) -> None:
    [a] = dispatched(sched, make_task("a"))
    report(sched, "w1", a, 1, P.COMPLETED)
    [b] = submit(sched, make_task("b"))
    sched.cancel(b)
    assert [p for t, p in events if t == a] == [P.PENDING, P.ASSIGNED, P.COMPLETED]
    assert [p for t, p in events if t == b] == [P.PENDING, P.CANCELLED]


def test_a_broken_listener_does_not_break_scheduling(sched) -> None:
    def broken(_task):
        raise RuntimeError("watcher bug")

    sched.add_listener(broken)
    assert submit(sched, make_task("a"))
    sched.remove_listener(broken)


def test_pending_reason(sched) -> None:
    [a] = submit(sched, make_task("a").gpus(1))
    assert "no worker registered" in sched.pending_reason(sched.get_task(a))
    register(sched, make_registration("w1"))
    assert "needs 1 gpu(s)" in sched.pending_reason(sched.get_task(a))
    register(sched, make_registration("g").gpus(1))
    assert poll_ids(sched, "g") == [a]
    assert sched.pending_reason(sched.get_task(a)) == ""


def test_a_dispatch_the_store_cannot_record_is_undone(sched) -> None:
    [a] = submit(sched, make_task("a"))
    register(sched, make_registration("w1"))
    store = sched._store
    original = store.save_attempts

    def failing(_attempts):
        raise OSError("disk full")

    store.save_attempts = failing
    with pytest.raises(OSError):
        sched.poll("w1", 1)
    store.save_attempts = original
    task = sched.get_task(a)
    assert (task.phase, task.attempt, task.worker_id) == (P.PENDING, 0, "")
    assert sched.list_workers()[0].leases == {}
    assert poll_ids(sched, "w1") == [a]
    assert sched.get_task(a).attempt == 1
