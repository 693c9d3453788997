"""The real Prometheus scrapes the real scheduler while real workers run tasks.

Tasks are submitted before any worker exists, so the queue depth Prometheus stores must equal
what was submitted (by priority); then workers run them all, and the completed-task counter it
stores must equal the tasks run while the queue depth falls to zero.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.fixtures import prometheus
from tests.integration import harness
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

LOW, HIGH = 4, 2
"""Tasks submitted at priority 0 and at priority 7."""
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "vahana-dashboard.json"
SCRAPED = 30.0
"""Seconds to wait for a value to reach Prometheus: first scrape ~5 s after its start."""


@pytest.fixture
def metered_scheduler() -> Iterator[harness.SchedulerProcess]:
    with tempfile.TemporaryDirectory(prefix="vh-") as path:
        process = harness.SchedulerProcess(
            state_dir=Path(path), metrics_port=harness.free_port()
        ).start()
        try:
            yield process
        finally:
            process.stop()


def test_prometheus_sees_the_queue_depth_then_every_completed_task(
    metered_scheduler: harness.SchedulerProcess,
) -> None:
    require(prometheus.binary_available(), prometheus.MISSING)
    scheduler = metered_scheduler
    client = harness.Client(scheduler.address)
    workers: list[harness.WorkerProcess] = []
    worker_ports = [harness.free_port() for _ in range(2)]
    targets = [f"127.0.0.1:{port}" for port in (scheduler.metrics_port, *worker_ports)]
    try:
        with prometheus.running_prometheus(targets) as prom:
            ids = client.submit(
                *[harness.submission("echo low", name=f"low-{i}") for i in range(LOW)],
                *[
                    harness.submission("echo high", name=f"high-{i}", priority=7)
                    for i in range(HIGH)
                ],
            )
            assert len(ids) == LOW + HIGH

            def depth(expr: str) -> float | None:
                return prom.value(expr)

            wait_until(
                lambda: depth("sum(vahana_queue_depth)") == LOW + HIGH,
                timeout=SCRAPED,
                message=f"Prometheus to store a queue depth of {LOW + HIGH}",
            )
            assert depth('vahana_queue_depth{priority="7"}') == HIGH
            assert depth('vahana_queue_depth{priority="0"}') == LOW
            assert depth('vahana_tasks{phase="PENDING"}') == LOW + HIGH
            assert depth("vahana_tasks_submitted_total") == LOW + HIGH

            for n, port in enumerate(worker_ports):
                workers.append(
                    harness.WorkerProcess(
                        worker_id=f"prom-{n}",
                        server_address=scheduler.address,
                        working_dir=scheduler.state_dir / "workers" / f"prom-{n}",
                        max_tasks=2,
                        extra=(f"--metrics-port={port}",),
                    ).start()
                )
            wait_until(
                lambda: all(client.status(task_id) in harness.FINAL for task_id in ids),
                timeout=60,
                message="every task to finish",
            )
            wait_until(
                lambda: depth('sum(vahana_tasks_completed_total{phase="COMPLETED"})') == LOW + HIGH,
                timeout=SCRAPED,
                message=f"Prometheus to count {LOW + HIGH} completed tasks",
            )
            wait_until(
                lambda: (
                    depth("sum(vahana_queue_depth)") == 0
                    and depth('sum(vahana_tasks{phase=~"ASSIGNED|RUNNING"})') == 0
                ),
                timeout=SCRAPED,
                message="Prometheus to store an empty queue",
            )
            assert depth('sum(vahana_tasks_completed_total{phase!="COMPLETED"})') in (None, 0)
            assert depth("vahana_task_dispatch_latency_seconds_count") == LOW + HIGH
            assert depth('sum(vahana_task_duration_seconds_count{phase="COMPLETED"})') == LOW + HIGH
            wait_until(
                lambda: depth("sum(vahana_workers)") == 2,
                timeout=SCRAPED,
                message="both workers in vahana_workers",
            )
            assert (depth("sum(vahana_worker_heartbeats_received_total)") or 0) > 0
            submitted = prom.query(
                'vahana_grpc_server_handled_total{grpc_method="SubmitTasks",grpc_code="OK"}'
            )
            assert [float(s["value"][1]) for s in submitted] == [1.0]
            # The workers' own endpoints (--metrics-port) count the same tasks.
            wait_until(
                lambda: depth('sum(vahana_worker_tasks_total{outcome="completed"})') == LOW + HIGH,
                timeout=SCRAPED,
                message="the workers' metrics to count every task",
            )
            assert depth("sum(vahana_worker_active_tasks)") == 0
            # Both workers scraped since they started (one may have started after a scrape of
            # its port was refused, and done no task), and both links healthy.
            wait_until(
                lambda: depth('sum(vahana_worker_circuit_breaker_state{state="closed"})') == 2,
                timeout=SCRAPED,
                message="both workers' circuit breakers closed",
            )
            wait_until(
                lambda: [t["health"] for t in prom.targets()] == ["up"] * 3,
                timeout=SCRAPED,
                message="every target up",
            )
            # The Grafana dashboard's queries are valid PromQL that Prometheus evaluates.
            dashboard = json.loads(DASHBOARD.read_text())
            for panel in dashboard["panels"]:
                for query in panel.get("targets", []):
                    prom.query(query["expr"].replace("$job", ".+"))
            assert prom.value('sum(vahana_queue_depth{job=~".+"}) or vector(0)') == 0
    finally:
        client.close()
        for worker in workers:
            worker.cleanup()
