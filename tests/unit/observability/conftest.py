"""Fixtures: a Scheduler on a fake clock and in-memory SQLite, instrumented on its own registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from vahana.core import clock as clocks
from vahana.observability import instrumentation
from vahana.scheduling import records, scheduler
from vahana.store import sqlite

SETTINGS = records.SchedulerSettings(
    heartbeat_interval_seconds=10.0, missed_heartbeats=3, removal_after_unhealthy_seconds=60.0
)


@pytest.fixture
def clock() -> clocks.FakeClock:
    return clocks.FakeClock(start=1_000.0)


@pytest.fixture
def sched(clock: clocks.FakeClock) -> Iterator[scheduler.Scheduler]:
    store = sqlite.SqliteStore(":memory:")
    yield scheduler.Scheduler(
        store, settings=SETTINGS, clock=clock, new_task_id=clocks.counting_ids()
    )
    store.close()


@pytest.fixture
def metered(sched: scheduler.Scheduler, clock: clocks.FakeClock) -> instrumentation.Instrumentation:
    return instrumentation.Instrumentation(sched, registry=CollectorRegistry(), clock=clock)
