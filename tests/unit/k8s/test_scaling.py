"""Pool scaling decisions: demand within bounds; only idle workers are released."""

from __future__ import annotations

from vahana.core import models, scaling


def worker(
    worker_id: str,
    *,
    idle_since: float | None,
    busy: bool = False,
    state: models.WorkerState = models.WorkerState.AVAILABLE,
) -> models.WorkerRecord:
    record = models.WorkerRecord(
        id=worker_id,
        capacity=models.Resources(1),
        max_tasks=1,
        registered_at=0,
        last_seen=0,
        state=state,
        idle_since=idle_since,
    )
    if busy:
        record.leases["t"] = 1
    return record


def test_desired_workers_follows_demand_between_min_and_max() -> None:
    desired = scaling.desired_workers
    assert desired(minimum=0, maximum=4, pending=0, busy_workers=0, tasks_per_worker=1) == 0
    assert desired(minimum=1, maximum=4, pending=0, busy_workers=0, tasks_per_worker=1) == 1
    assert desired(minimum=0, maximum=4, pending=3, busy_workers=1, tasks_per_worker=2) == 3
    assert desired(minimum=0, maximum=4, pending=100, busy_workers=0, tasks_per_worker=1) == 4


def test_only_idle_workers_past_the_timeout_are_released_longest_idle_first() -> None:
    workers = [
        worker("busy", idle_since=None, busy=True),
        worker("fresh", idle_since=95.0),
        worker("old", idle_since=10.0),
        worker("older", idle_since=5.0),
        worker("draining", idle_since=1.0, state=models.WorkerState.DRAINING),
    ]
    assert scaling.idle_to_release(workers, excess=5, now=100.0, idle_timeout=30.0) == [
        "older",
        "old",
    ]
    assert scaling.idle_to_release(workers, excess=1, now=100.0, idle_timeout=30.0) == ["older"]
    assert scaling.idle_to_release(workers, excess=0, now=100.0, idle_timeout=30.0) == []
