"""After a scheduler restart, known workers get the silence limit plus one heartbeat interval to
come back (heartbeat 1 s × 3 missed: 4 s), not a fixed 30 s: a worker that died during the
outage has its task requeued within ~5 s of the restart, while a live one — which tries to
reconnect at least once per interval however long the outage — keeps its task."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from vahana.proto import worker_pb2

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
GRACE = 4.0
"""heartbeat_interval × (missed_heartbeats + 1) of the `scheduler` fixture: 1 s × (3 + 1)."""


def heartbeat_failures(worker: harness.WorkerProcess) -> int:
    return sum(
        1
        for line in worker.log_text().splitlines()
        if "call to scheduler failed" in line and "call=SendHeartbeat" in line
    )


def test_after_a_restart_a_dead_workers_task_is_requeued_within_the_grace_a_live_one_kept(
    scheduler: harness.SchedulerProcess,
    client: harness.Client,
    start_worker: WorkerFactory,
    state_dir: Path,
) -> None:
    assert (scheduler.heartbeat_interval, scheduler.missed_heartbeats) == (1.0, 3)
    live = start_worker("w-live", extra=("--label=role=live",))
    dead = start_worker("w-dead", extra=("--label=role=dead",))
    go = state_dir / "go"
    [kept] = client.submit(
        harness.submission(
            f"until [ -e {go} ]; do sleep 0.1; done", "kept", labels={"role": "live"}
        )
    )
    [orphan] = client.submit(harness.submission("sleep 600", "orphan", labels={"role": "dead"}))
    for task in (kept, orphan):
        wait_until(lambda t=task: client.status(t) == worker_pb2.RUNNING, timeout=30)

    scheduler.kill()
    dead.kill()  # dies while the scheduler is away: nobody sees it go
    # A long outage: the live worker's backoff would have grown far past the grace by now,
    # were it not capped by its heartbeat interval.
    wait_until(
        lambda: heartbeat_failures(live) >= 8,
        timeout=60,
        message="the live worker failing to reach the scheduler for a while",
    )
    launched = time.monotonic()
    scheduler.start()
    serving = time.monotonic()

    wait_until(
        lambda: client.get(orphan).infra_failures == 1,
        timeout=30,
        message="the dead worker's task requeued",
    )
    requeued = time.monotonic()
    print(
        f"restart → dead worker's task requeued: {requeued - launched:.2f} s from the launch, "
        f"{requeued - serving:.2f} s from serving (grace {GRACE:g} s, not 30 s)"
    )
    assert requeued - launched >= GRACE  # the grace was given
    assert requeued - serving < GRACE + 1.5  # and no more (the health monitor ticks each 1 s)
    info = client.get(orphan)
    assert info.status == worker_pb2.PENDING and "w-dead" in info.message, info
    # The live worker was heard within the grace: its task kept its first attempt.
    info = client.get(kept)
    assert (info.status, info.attempt, info.infra_failures) == (worker_pb2.RUNNING, 1, 0), info
    assert {w.worker_id: w.status for w in client.list_workers()}["w-live"] in (
        worker_pb2.BUSY,
        worker_pb2.AVAILABLE,
    )
    go.touch()
    wait_until(lambda: client.status(kept) in harness.FINAL, timeout=30, message="kept done")
    info = client.get(kept)
    assert (info.status, info.attempt) == (worker_pb2.COMPLETED, 1), info
