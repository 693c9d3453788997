"""Fixtures: a Scheduler on a fake clock and an in-memory SQLite store, with its events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vahana.core import clock as clocks
from vahana.core import models
from vahana.scheduling import records, scheduler
from vahana.store import sqlite

INTERVAL = 10.0
"""Heartbeat interval of the test settings: silent for 3 × 10 s is UNHEALTHY."""
SETTINGS = records.SchedulerSettings(
    heartbeat_interval_seconds=INTERVAL, missed_heartbeats=3, removal_after_unhealthy_seconds=60.0
)


@pytest.fixture
def clock() -> clocks.FakeClock:
    return clocks.FakeClock(start=1_000.0)


@pytest.fixture
def store() -> Iterator[sqlite.SqliteStore]:
    store = sqlite.SqliteStore(":memory:")
    yield store
    store.close()


@pytest.fixture
def events() -> list[tuple[str, models.TaskPhase]]:
    return []


@pytest.fixture
def sched(store, clock, events) -> scheduler.Scheduler:
    made = scheduler.Scheduler(
        store, settings=SETTINGS, clock=clock, new_task_id=clocks.counting_ids()
    )
    made.add_listener(lambda task: events.append((task.id, task.phase)))
    return made
