"""Walltime-aware pilots: a worker about to reach its allocation's end is not capacity."""

from __future__ import annotations

from vahana.core import models, scaling


def worker(
    worker_id: str, ends_at: float | None, state: models.WorkerState = models.WorkerState.AVAILABLE
) -> models.WorkerRecord:
    return models.WorkerRecord(
        id=worker_id,
        capacity=models.Resources(),
        max_tasks=1,
        registered_at=0.0,
        last_seen=0.0,
        state=state,
        allocation_ends_at=ends_at,
    )


def test_workers_ending_within_the_lead_are_expiring() -> None:
    workers = [
        worker("forever", None),
        worker("soon", 1000.0 + 50),
        worker("later", 1000.0 + 500),
        worker("gone", 1000.0 - 1),
        worker("draining", 1000.0 + 5, models.WorkerState.DRAINING),
        worker("lost", 1000.0 + 5, models.WorkerState.UNHEALTHY),
    ]
    assert scaling.expiring(workers, now=1000.0, lead_seconds=60) == ["soon", "gone"]


def test_nothing_expires_without_allocations() -> None:
    assert scaling.expiring([worker("a", None)], now=0.0, lead_seconds=1e9) == []
