"""Dependencies in the scheduler: dependents held out of the queue, released or ended
UPSTREAM_FAILED with their upstream's end, refused submissions, and a restart."""

from __future__ import annotations

import dataclasses

import pytest
from builders import make_registration, make_task
from drive import poll_ids, register, report, submit
from vahana.core import arrays, models
from vahana.scheduling import records, scheduler
from vahana.store import sqlite

P = models.TaskPhase


def run(sched: scheduler.Scheduler, task_id: str, phase: models.TaskPhase = P.COMPLETED) -> None:
    task = sched.get_task(task_id)
    report(
        sched,
        task.worker_id,
        task_id,
        task.attempt,
        phase,
        exit_code=0 if phase == P.COMPLETED else 1,
    )


def diamond(*, b_after_any: bool = False):
    return [
        make_task("a"),
        make_task("b").after("a"),
        make_task("c").after("a"),
        make_task("d").after("b", "c", any_end=b_after_any),
    ]


def test_listeners_hear_when_a_dependent_waits_for_fewer(sched, events):
    register(sched, make_registration("w").slots(4))
    a, b, c, d = submit(sched, *diamond())
    poll_ids(sched, "w")
    run(sched, a)
    poll_ids(sched, "w")
    events.clear()
    run(sched, b)
    assert (d, P.PENDING) in events  # its reason is now "waiting for c"


def test_a_diamond_runs_in_order(sched):
    register(sched, make_registration("w").slots(4))
    a, b, c, d = submit(sched, *diamond())
    assert sched.queue_length == 1
    assert sched.pending_reason(sched.get_task(d)) == "waiting for b, c"
    assert poll_ids(sched, "w") == [a]
    run(sched, a)
    assert sorted(poll_ids(sched, "w")) == sorted([b, c])
    run(sched, b)
    assert sched.pending_reason(sched.get_task(d)) == "waiting for c"
    assert poll_ids(sched, "w") == []
    run(sched, c)
    assert poll_ids(sched, "w") == [d]


def test_a_failed_upstream_ends_its_dependents_and_not_the_others(sched):
    register(sched, make_registration("w").slots(4))
    a, b, c, d = submit(sched, *diamond())
    poll_ids(sched, "w")
    run(sched, a)
    poll_ids(sched, "w")
    run(sched, b, P.FAILED)
    ended = sched.get_task(d)
    assert ended.phase == P.UPSTREAM_FAILED
    assert ended.message == "upstream failed: b ended FAILED"
    assert sched.get_task(c).phase == P.ASSIGNED  # c still runs
    run(sched, c)
    assert sched.get_task(c).phase == P.COMPLETED


def test_afterany_runs_after_a_failure(sched):
    register(sched, make_registration("w").slots(4))
    a, b, c, d = submit(sched, *diamond(b_after_any=True))
    poll_ids(sched, "w")
    run(sched, a)
    poll_ids(sched, "w")
    run(sched, b, P.FAILED)
    run(sched, c)
    assert poll_ids(sched, "w") == [d]


def test_the_failure_goes_down_a_chain_naming_where_it_began(sched):
    register(sched, make_registration("w"))
    a, b, c = submit(sched, make_task("a"), make_task("b").after("a"), make_task("c").after("b"))
    poll_ids(sched, "w")
    run(sched, a, P.FAILED)
    assert sched.get_task(c).phase == P.UPSTREAM_FAILED
    assert "a ended FAILED" in sched.get_task(c).message


def test_cancelling_a_waiting_dependent_ends_it(sched):
    a, b = submit(sched, make_task("a"), make_task("b").after("a"))
    assert sched.cancel(b)[0]
    assert sched.get_task(b).phase == P.CANCELLED
    assert sched.get_task(a).phase == P.PENDING


def test_cycles_and_unknown_names_are_refused_whole(sched):
    with pytest.raises(records.RefusedDependencies, match="cycle: a → b → a"):
        submit(sched, make_task("a").after("b"), make_task("b").after("a"))
    with pytest.raises(records.RefusedDependencies, match="no task named ghost"):
        submit(sched, make_task("x"), make_task("y").after("ghost"))
    assert sched.unfinished_count == 0


def test_a_name_may_be_a_task_submitted_before(sched):
    register(sched, make_registration("w"))
    [a] = submit(sched, make_task("a"))
    [b] = submit(sched, make_task("b").after("a"))
    assert sched.pending_reason(sched.get_task(b)) == "waiting for a"
    poll_ids(sched, "w")
    run(sched, a)
    assert poll_ids(sched, "w") == [b]
    [c] = submit(sched, make_task("c").after("a"))  # a completed already: queued at once
    assert sched.get_task(c).phase == P.PENDING and sched.pending_reason(sched.get_task(c)) != (
        "waiting for a"
    )


def array_of(name: str, count: int, *after: str, same_index: bool = False):
    builder = make_task(name).after(*after, same_index=same_index)
    return arrays.expand(dataclasses.replace(builder.submission(), array=models.ArraySpec(count)))


def test_same_index_pairs_instances(sched):
    register(sched, make_registration("w").slots(10))
    ids = sched.submit(array_of("b", 3, "a", same_index=True) + array_of("a", 3))
    b_ids, a_ids = ids[:3], ids[3:]
    assert sorted(poll_ids(sched, "w")) == sorted(a_ids)
    run(sched, a_ids[1])
    assert poll_ids(sched, "w") == [b_ids[1]]
    run(sched, a_ids[0], P.FAILED)
    assert sched.get_task(b_ids[0]).phase == P.UPSTREAM_FAILED
    assert "a[0] ended FAILED" in sched.get_task(b_ids[0]).message
    assert sched.get_task(b_ids[2]).phase == P.PENDING


def test_an_array_waits_for_every_instance(sched):
    register(sched, make_registration("w").slots(10))
    ids = sched.submit(array_of("a", 3) + [make_task("r").after("a").submission()])
    poll_ids(sched, "w")
    for task_id in ids[:2]:
        run(sched, task_id)
    assert sched.pending_reason(sched.get_task(ids[3])) == "waiting for a"
    run(sched, ids[2])
    assert poll_ids(sched, "w") == [ids[3]]


def test_large_submissions_depend_across_chunks(store, clock):
    import asyncio

    settings = dataclasses.replace(scheduler.records.SchedulerSettings(), submit_chunk_tasks=7)
    sched = scheduler.Scheduler(store, settings=settings, clock=clock)
    given = array_of("b", 20, "a", same_index=True) + array_of("a", 20)
    ids = asyncio.run(sched.submit_async(given))
    assert len(set(ids)) == 40
    b0 = sched.get_task(ids[0])
    assert b0.upstream == {"a": (ids[20],)}
    assert sched.queue_length == 20


def test_a_restart_keeps_dependents_held(tmp_path, clock):
    path = tmp_path / "s.db"
    first = scheduler.Scheduler(sqlite.SqliteStore(path), clock=clock)
    register(first, make_registration("w").slots(4))
    a, b, c, d = submit(first, *diamond())
    poll_ids(first, "w")
    run(first, a)
    poll_ids(first, "w")
    run(first, b)
    again = scheduler.Scheduler(sqlite.SqliteStore(path), clock=clock)
    again.recover()
    held = again.get_task(d)
    assert held.phase == P.PENDING and held.upstream == {"b": (b,), "c": (c,)}
    assert again.pending_reason(held) == "waiting for c"
    assert again.queue_length == 0  # not released early
    register(again, make_registration("w").slots(4).running((c, 1)))
    run(again, c)
    assert poll_ids(again, "w") == [d]
