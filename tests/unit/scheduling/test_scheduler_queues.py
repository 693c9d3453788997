"""Scheduler with queues: fair share by weight, quotas held and shown, borrowing, rollback."""

from __future__ import annotations

import pytest
from builders import make_registration, make_task
from drive import poll_ids, register, report, submit
from vahana.core import fairshare, models
from vahana.scheduling import scheduler
from vahana.store import base

P = models.TaskPhase


def _flood(sched: scheduler.Scheduler, queue: str, count: int) -> list[str]:
    return submit(sched, *(make_task(f"{queue}-{i}").queue(queue) for i in range(count)))


def _queue_of(sched: scheduler.Scheduler, task_id: str) -> str:
    return fairshare.queue_of(sched.get_task(task_id))


def test_two_flooding_queues_get_slot_time_in_the_ratio_of_their_weights(sched, clock) -> None:
    """Weights 1 and 3 on 8 one-slot workers, tasks of 1 s each, a 2-minute run (the scheduler's
    clock): slot-time 25 %/75 %, within 1 %."""
    sched.set_queues([fairshare.QueueConfig("a", weight=1), fairshare.QueueConfig("b", weight=3)])
    _flood(sched, "a", 1200)
    _flood(sched, "b", 1200)
    workers = [f"w{i}" for i in range(8)]
    register(sched, *(make_registration(w) for w in workers))
    slot_seconds = {"a": 0, "b": 0}
    held: dict[str, str] = {}
    for _ in range(120):
        for worker in workers:
            if worker in held:
                report(sched, worker, held.pop(worker), 1, P.COMPLETED, exit_code=0)
            for task_id in poll_ids(sched, worker, 1):
                slot_seconds[_queue_of(sched, task_id)] += 1
                held[worker] = task_id
        clock.now += 1.0
    total = sum(slot_seconds.values())
    assert total == 960
    assert abs(slot_seconds["a"] / total - 0.25) <= 0.01


def test_an_idle_queue_is_served_first_when_its_work_comes(sched, clock) -> None:
    _flood(sched, "busy", 50)
    register(sched, make_registration("w1"))
    for _ in range(10):
        [task_id] = poll_ids(sched, "w1", 1)
        clock.now += 10
        report(sched, "w1", task_id, 1, P.COMPLETED, exit_code=0)
    [newcomer] = submit(sched, make_task("late").queue("quiet"))
    assert poll_ids(sched, "w1", 1) == [newcomer]


def test_a_quota_of_two_running_tasks_is_never_exceeded_and_shows(sched, clock) -> None:
    quota = fairshare.QueueConfig("q", quotas=(fairshare.Quota(tasks=2),), borrowing=False)
    sched.set_queues([quota])
    ids = _flood(sched, "q", 6)
    register(sched, *(make_registration(f"w{i}") for i in range(4)))
    handed = [t for i in range(4) for t in poll_ids(sched, f"w{i}", 1)]
    assert handed == ids[:2]
    reason = sched.pending_reason(sched.get_task(ids[2]))
    assert reason == "queue q is at its quota overall: 2/2 running tasks (borrowing off)"
    report(sched, "w0", ids[0], 1, P.COMPLETED, exit_code=0)
    assert poll_ids(sched, "w2", 1) == [ids[2]]
    assert poll_ids(sched, "w3", 1) == []


def test_a_queue_past_its_quota_borrows_only_capacity_nobody_else_waits_for(sched) -> None:
    sched.set_queues(
        [
            fairshare.QueueConfig("small", quotas=(fairshare.Quota(tasks=1),)),
            fairshare.QueueConfig("owner", quotas=(fairshare.Quota(tasks=3),)),
        ]
    )
    small = _flood(sched, "small", 4)
    register(sched, *(make_registration(f"w{i}") for i in range(4)))
    # Nobody else waits: "small" borrows every idle slot past its quota of 1.
    assert [t for i in range(3) for t in poll_ids(sched, f"w{i}", 1)] == small[:3]
    reason = sched.pending_reason(sched.get_task(small[3]))
    assert reason.endswith("may borrow capacity that no other queue waits for")
    # The lender's work comes: borrowed tasks keep running, the free slot goes to the lender.
    owner = _flood(sched, "owner", 2)
    assert poll_ids(sched, "w3", 1) == [owner[0]]
    assert {sched.get_task(t).phase for t in small[:3]} == {P.ASSIGNED}
    report(sched, "w0", small[0], 1, P.COMPLETED, exit_code=0)
    assert poll_ids(sched, "w0", 1) == [owner[1]]


def test_a_queue_that_forbids_borrowing_leaves_capacity_idle(sched) -> None:
    sched.set_queues(
        [fairshare.QueueConfig("q", quotas=(fairshare.Quota(tasks=1),), borrowing=False)]
    )
    ids = _flood(sched, "q", 2)
    register(sched, make_registration("w0"), make_registration("w1"))
    assert poll_ids(sched, "w0", 1) == [ids[0]]
    assert poll_ids(sched, "w1", 1) == []


def test_a_pool_quota_binds_on_that_pools_workers_only(sched) -> None:
    sched.set_queues(
        [
            fairshare.QueueConfig(
                "q", quotas=(fairshare.Quota(pool="gpu", tasks=1),), borrowing=False
            )
        ]
    )
    ids = _flood(sched, "q", 3)
    register(
        sched,
        make_registration("g0").pool("gpu"),
        make_registration("g1").pool("gpu"),
        make_registration("c0").pool("cpu"),
    )
    assert poll_ids(sched, "g0", 1) == [ids[0]]
    assert poll_ids(sched, "g1", 1) == []
    assert poll_ids(sched, "c0", 1) == [ids[1]]


def test_usage_follows_the_attempts_and_is_given_back_when_they_end(sched, clock) -> None:
    [task_id] = _flood(sched, "q", 1)
    register(sched, make_registration("w0").pool("p"))
    poll_ids(sched, "w0", 1)
    held = sched.queue_usage()["q"]
    assert (held.total.tasks, held.by_pool["p"].tasks, held.cores) == (1, 1, 1.0)
    clock.now += 30
    report(sched, "w0", task_id, 1, P.FAILED, exit_code=1)
    after = sched.queue_usage()["q"]
    assert after.total.tasks == 0 and after.by_pool == {}
    assert 29 < fairshare.decayed_at(after, clock.now, 3600) < 30


def test_a_rolled_back_dispatch_leaves_the_usage_as_it_was(sched, store) -> None:
    """The usage is memory like the rest: a dispatch whose commit fails is undone in it too."""
    ids = _flood(sched, "q", 2)
    register(sched, make_registration("w0"), make_registration("w1"))
    poll_ids(sched, "w0", 1)
    before = sched.queue_usage()["q"].mark("")
    original = store.update_tasks

    def failing(tasks):
        raise base.StoreUnavailable("disk full")

    store.update_tasks = failing
    with pytest.raises(base.StoreUnavailable):
        sched.poll("w1", 1)
    store.update_tasks = original
    assert sched.queue_usage()["q"].mark("") == before
    assert sched.get_task(ids[1]).phase == P.PENDING
