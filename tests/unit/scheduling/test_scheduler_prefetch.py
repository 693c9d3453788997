"""Prefetch: a worker whose slots are full may hold queued tasks, but only while the queue
leaves the other workers theirs; a task it hands back unstarted (PENDING) is queued again
with no failure counted."""

from __future__ import annotations

from builders import make_registration, make_task
from drive import poll_ids, register, report, submit
from vahana.core import models

P = models.TaskPhase


def test_a_worker_prefetches_only_what_leaves_the_other_workers_their_slots(sched) -> None:
    register(sched, make_registration("w1").prefetch(3), make_registration("w2").slots(2))
    ids = submit(sched, *(make_task(f"t{i}") for i in range(5)))
    # One for its slot, then queued ones while more than w2's 2 slots' worth stay behind.
    assert poll_ids(sched, "w1", max_tasks=10) == ids[:3]
    assert poll_ids(sched, "w2", max_tasks=10) == ids[3:]


def test_a_short_queue_is_not_prefetched(sched) -> None:
    register(sched, make_registration("w1").prefetch(4), make_registration("w2"))
    a, b = submit(sched, make_task("a"), make_task("b"))
    assert poll_ids(sched, "w1", max_tasks=5) == [a]  # b is for the idle w2
    assert poll_ids(sched, "w2", max_tasks=5) == [b]


def test_prefetch_is_bounded_by_what_the_worker_registered(sched) -> None:
    register(sched, make_registration("w1").slots(2).prefetch(3))
    ids = submit(sched, *(make_task(f"t{i}") for i in range(10)))
    assert poll_ids(sched, "w1", max_tasks=100) == ids[:5]
    assert poll_ids(sched, "w1", max_tasks=100) == []
    assert sched.get_task(ids[4]).phase == P.ASSIGNED
    assert sched.free_slots("w1") == 0


def test_a_worker_without_prefetch_gets_no_more_than_its_slots(sched) -> None:
    register(sched, make_registration("w1").slots(2))
    ids = submit(sched, *(make_task(f"t{i}") for i in range(10)))
    assert poll_ids(sched, "w1", max_tasks=100) == ids[:2]


def test_a_task_handed_back_is_queued_again_first_with_no_failure_counted(sched, store) -> None:
    register(sched, make_registration("w1").prefetch(1))
    a, b, c = submit(sched, make_task("a"), make_task("b"), make_task("c"))
    assert poll_ids(sched, "w1", max_tasks=2) == [a, b]

    result = report(sched, "w1", b, 1, P.PENDING, message="waited 1s in the worker's queue")
    assert result.accepted
    task = sched.get_task(b)
    assert (task.phase, task.worker_id, task.task_failures, task.infra_failures) == (
        P.PENDING,
        "",
        0,
        0,
    )
    assert task.not_before == 0.0 and task.message == "waited 1s in the worker's queue"
    [attempt] = store.list_attempts(b)
    assert (attempt.phase, attempt.message) == (P.PENDING, "waited 1s in the worker's queue")

    register(sched, make_registration("w2"))
    assert poll_ids(sched, "w2", max_tasks=1) == [b]  # ahead of c, as it was
    assert sched.get_task(b).attempt == 2
    assert sched.get_task(c).phase == P.PENDING


def test_only_a_task_not_started_can_be_handed_back(sched) -> None:
    register(sched, make_registration("w1"))
    [a] = submit(sched, make_task("a"))
    assert poll_ids(sched, "w1") == [a]
    assert report(sched, "w1", a, 1, P.RUNNING).accepted
    refused = report(sched, "w1", a, 1, P.PENDING)
    assert not refused.accepted and "cannot report PENDING for a task RUNNING" in refused.message
    assert sched.get_task(a).phase == P.RUNNING


def test_a_replayed_hand_back_changes_nothing(sched) -> None:
    register(sched, make_registration("w1"))
    [a] = submit(sched, make_task("a"))
    assert poll_ids(sched, "w1") == [a]
    assert report(sched, "w1", a, 1, P.PENDING).accepted
    assert poll_ids(sched, "w1") == [a]  # attempt 2
    assert not report(sched, "w1", a, 1, P.PENDING).accepted  # attempt 1 is over
    task = sched.get_task(a)
    assert (task.phase, task.attempt) == (P.ASSIGNED, 2)


def test_a_cancelled_task_handed_back_ends_cancelled(sched) -> None:
    register(sched, make_registration("w1"))
    [a] = submit(sched, make_task("a"))
    assert poll_ids(sched, "w1") == [a]
    sched.cancel(a)
    assert report(sched, "w1", a, 1, P.PENDING).accepted
    assert sched.get_task(a).phase == P.CANCELLED
