"""The dashboard's feed on a real Scheduler (in-memory SQLite, fake clock): counters by phase,
queue depth by pool and priority, the last hour's series, watched tasks."""

from __future__ import annotations

import pytest
from builders import make_registration, make_task
from vahana.core import clock as clocks
from vahana.core import models
from vahana.scheduling import records, scheduler
from vahana.store import sqlite
from vahana.web import feed as feed_module
from vahana.web import series

P = models.TaskPhase


@pytest.fixture
def clock() -> clocks.FakeClock:
    return clocks.FakeClock(start=10_000.0)


@pytest.fixture
def sched(clock: clocks.FakeClock) -> scheduler.Scheduler:
    store = sqlite.SqliteStore(":memory:")
    return scheduler.Scheduler(store, clock=clock, new_task_id=clocks.counting_ids())


def report(sched: scheduler.Scheduler, task_id: str, attempt: int, phase: P, **fields) -> None:
    [result] = sched.report("w1", [records.StatusReport(task_id, attempt, phase, **fields)])
    assert result.accepted, result


def make_feed(sched: scheduler.Scheduler, clock: clocks.Clock) -> feed_module.Feed:
    feed = feed_module.Feed(sched, clock=clock, finished=sched.count_tasks_by_phase())
    sched.add_listener(feed)
    return feed


def test_the_overview_counts_phases_queue_depths_and_running_per_pool(sched, clock) -> None:
    feed = make_feed(sched, clock)
    sched.register(make_registration("w1").slots(2).pool("gpu").registration())
    a, b, _c, _d = sched.submit(
        [
            make_task("a").submission(),
            make_task("b").submission(),
            make_task("c").priority(5).submission(),
            make_task("d").pool("gpu").submission(),
        ]
    )
    clock.advance(2.0)
    handed = [t.id for t in sched.poll("w1", 2).tasks]
    assert len(handed) == 2
    first, second = handed
    report(sched, first, 1, P.RUNNING)
    clock.advance(1.0)
    report(sched, first, 1, P.COMPLETED, exit_code=0)
    overview = feed.overview()
    assert overview["phases"] == {
        "PENDING": 2,
        "ASSIGNED": 1,
        "RUNNING": 0,
        "COMPLETED": 1,
        "FAILED": 0,
        "CANCELLED": 0,
        "TIMED_OUT": 0,
        "UPSTREAM_FAILED": 0,
    }
    assert overview["total"] == 4
    queued = {(q["pool"], q["priority"]): q["tasks"] for q in overview["queue"]}
    assert sum(queued.values()) == 2
    assert overview["pools"] == [
        {"pool": "gpu", "running": 0, "assigned": 1, "workers": 1, "slots": 2}
    ]
    assert overview["workers"]["BUSY"] + overview["workers"]["AVAILABLE"] == 1
    assert overview["store"] == {"healthy": True, "problem": ""}
    assert {first, second} <= {a, b, _c, _d}


def test_the_series_holds_throughput_and_dispatch_latency(sched, clock) -> None:
    feed = make_feed(sched, clock)
    sched.register(make_registration("w1").slots(4).registration())
    ids = sched.submit([make_task(f"t{i}").submission() for i in range(3)])
    clock.advance(0.5)  # ready 0.5 s before it is handed out
    sched.poll("w1", 3)
    for task_id in ids[:2]:
        report(sched, task_id, 1, P.COMPLETED, exit_code=0)
    report(sched, ids[2], 1, P.FAILED, exit_code=1)
    window = feed.history()
    assert len(window["time"]) == series.BUCKETS
    assert sum(window["completed_per_s"]) * series.BUCKET_SECONDS == pytest.approx(2)
    assert sum(window["failed_per_s"]) * series.BUCKET_SECONDS == pytest.approx(1)
    latencies = [v for v in window["latency_p50_ms"] if v is not None]
    assert latencies == [pytest.approx(500.0)]
    tail = feed.series_since(clock() - 1)  # from the bucket holding that moment
    assert tail["time"] == [9995.0, 10000.0]


def test_finished_tasks_in_the_store_are_counted_once(sched, clock) -> None:
    sched.register(make_registration("w1").registration())
    [done] = sched.submit([make_task("old").submission()])
    sched.poll("w1", 1)
    report(sched, done, 1, P.COMPLETED, exit_code=0)
    feed = make_feed(sched, clock)  # as a restarted scheduler's dashboard would start
    assert feed.overview()["phases"]["COMPLETED"] == 1
    [later] = sched.submit([make_task("new").submission()])
    sched.poll("w1", 1)
    report(sched, later, 1, P.COMPLETED, exit_code=0)
    assert feed.overview()["phases"]["COMPLETED"] == 2


def test_only_watched_tasks_are_kept_for_the_pages(sched, clock) -> None:
    feed = make_feed(sched, clock)
    woken: list[int] = []
    feed.on_change = lambda: woken.append(1)
    watched, other = sched.submit([make_task("w").submission(), make_task("o").submission()])
    feed.watch({watched})
    sched.cancel(other)
    assert feed.take_changed() == {} and woken == []
    sched.cancel(watched)
    changed = feed.take_changed()
    assert list(changed) == [watched] and changed[watched].phase is P.CANCELLED
    assert woken and feed.take_changed() == {}
    feed.unwatch({watched})
    assert feed._watched == {}


def test_queue_depth_is_sampled_into_the_series(sched, clock) -> None:
    feed = make_feed(sched, clock)
    sched.submit([make_task(f"t{i}").submission() for i in range(3)])
    feed.sample_queue()
    clock.advance(series.BUCKET_SECONDS * 3)
    window = feed.history()
    assert window["queued"][-1] == 3  # carried forward to buckets without a sample
    assert window["queued"][0] is None
