"""Attaches metrics to one scheduler: its listener, worker hook, collector and interceptor.

`app` builds one `Instrumentation` per scheduler process, passes `interceptor` to the gRPC
server, wraps its pool adapter factories with `instrument_pools`, and serves `registry` with
`endpoint`. Nothing else in Vahana knows about Prometheus.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from vahana.core import clock as clocks
from vahana.core import models
from vahana.observability import collectors, endpoint, interceptor, tasks
from vahana.observability import metrics as metrics_module
from vahana.observability import pools as pool_metrics
from vahana.pools import base
from vahana.scheduling import scheduler as scheduler_module


class Instrumentation:
    def __init__(
        self,
        sched: scheduler_module.Scheduler,
        *,
        registry: CollectorRegistry | None = None,
        clock: clocks.Clock = clocks.system_clock,
    ) -> None:
        self.metrics = metrics_module.SchedulerMetrics(registry)
        self.tasks = tasks.TaskObserver(self.metrics, clock=clock)
        for phase in tasks.LIVE_PHASES:  # tasks recovered before we listened
            self.tasks.seed(sched.list_tasks(phase=phase))
        sched.add_listener(self.tasks)
        sched.set_worker_hook(self._on_worker_event)
        self.registry.register(collectors.SchedulerCollector(sched, self.tasks.phase_counts))
        self.interceptor = interceptor.MetricsInterceptor(self.metrics)

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def instrument_pools(
        self, factories: Mapping[str, base.AdapterFactory]
    ) -> dict[str, base.AdapterFactory]:
        return pool_metrics.instrument_factories(factories, self.metrics)

    def endpoint(self, *, host: str, port: int) -> endpoint.MetricsEndpoint:
        return endpoint.MetricsEndpoint(self.registry, host=host, port=port)

    def _on_worker_event(self, event: str, worker: models.WorkerRecord) -> None:
        pool = metrics_module.pool_label(worker.pool)
        if event == "heartbeat":
            self.metrics.heartbeats.labels(pool).inc()
        elif event == "unhealthy":
            self.metrics.workers_unhealthy.labels(pool).inc()
        elif event == "quarantined":
            self.metrics.workers_quarantined.labels(pool).inc()
