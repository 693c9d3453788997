"""Gauges read from the scheduler at scrape time: queue depth, tasks by phase, workers by status.

A scrape runs on the scheduler's event loop (see `endpoint`), so reading its live state is
safe and costs one pass over the queue and the workers. Label sets seen once are reported as 0
afterwards, so that a series drops to zero instead of vanishing when its last task leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vahana.core import models
from vahana.observability import metrics as metrics_module
from vahana.scheduling import scheduler as scheduler_module

WORKER_STATES = (
    models.WorkerState.AVAILABLE,
    models.WorkerState.BUSY,
    models.WorkerState.DRAINING,
    models.WorkerState.UNHEALTHY,
)

PhaseCounts = Callable[[], dict[models.TaskPhase, int]]


class SchedulerCollector(Collector):
    """Reads queue, tasks and workers of one scheduler when Prometheus scrapes."""

    def __init__(self, sched: scheduler_module.Scheduler, phase_counts: PhaseCounts) -> None:
        self._scheduler = sched
        self._phase_counts = phase_counts
        self._queue_keys: set[tuple[str, str]] = set()
        self._pools: set[str] = set()

    def describe(self) -> Iterator[Metric]:
        """The families without samples: registering must not read the scheduler."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        queue_depth, tasks, workers = self._families()
        depth: dict[tuple[str, str], int] = dict.fromkeys(self._queue_keys, 0)
        for task in self._scheduler.queued_tasks():
            key = (metrics_module.pool_label(task.pool), str(task.spec.priority))
            depth[key] = depth.get(key, 0) + 1
        self._queue_keys.update(depth)
        for (pool, priority), count in sorted(depth.items()):
            queue_depth.add_metric([pool, priority], count)
        yield queue_depth

        for phase, count in self._phase_counts().items():
            tasks.add_metric([phase.value], count)
        yield tasks

        by_status: dict[tuple[str, str], int] = {
            (pool, state.value): 0 for pool in self._pools for state in WORKER_STATES
        }
        for worker in self._scheduler.list_workers():
            pool = metrics_module.pool_label(worker.pool)
            if pool not in self._pools:
                self._pools.add(pool)
                by_status.update({(pool, state.value): 0 for state in WORKER_STATES})
            key = (pool, worker.state.value)
            by_status[key] = by_status.get(key, 0) + 1
        for (pool, status), count in sorted(by_status.items()):
            workers.add_metric([pool, status], count)
        yield workers

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "vahana_queue_depth",
                "Tasks waiting in the queue (ready or in a retry backoff), by pool and priority.",
                labels=["pool", "priority"],
            ),
            GaugeMetricFamily(
                "vahana_tasks",
                "Unfinished tasks by phase (PENDING, ASSIGNED, RUNNING).",
                labels=["phase"],
            ),
            GaugeMetricFamily(
                "vahana_workers",
                "Registered workers by pool and status.",
                labels=["pool", "status"],
            ),
        )
