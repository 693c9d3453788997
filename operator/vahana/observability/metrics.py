"""The scheduler's metric families, defined once on a registry of their own.

Every metric is created here with its name, help, labels and buckets, on a dedicated
`CollectorRegistry` (never prometheus-client's process-wide default), so that tests and several
schedulers in one process never share counters. Label values are bounded: phases, kinds, pool
names, pool types, gRPC methods and codes — never task or worker ids.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram

NO_POOL = "-"
"""The `pool` label of tasks and workers that belong to no pool."""

DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
"""Seconds from ready-to-run to ASSIGNED: milliseconds when workers wait, an hour when busy."""
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)
"""Seconds a task runs: from a shell one-liner to a day-long job."""
GRPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Seconds per RPC; PollForTask is a long poll and sits near its wait (up to 30 s)."""
POOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Seconds per pool adapter call (a process spawn, a Job create, an sbatch, an ssh)."""


def pool_label(pool: str) -> str:
    return pool or NO_POOL


class SchedulerMetrics:
    """All metric objects the listeners, hooks and interceptor update, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.tasks_submitted = Counter(
            "vahana_tasks_submitted", "Tasks accepted by the scheduler.", registry=r
        )
        self.tasks_completed = Counter(
            "vahana_tasks_completed",
            "Tasks that reached a final phase, by that phase "
            "(COMPLETED, FAILED, CANCELLED, TIMED_OUT).",
            ["phase"],
            registry=r,
        )
        self.attempt_failures = Counter(
            "vahana_task_attempt_failures",
            "Task attempts that ended in failure, by the retry budget they spend "
            "(task: the command failed or could not be staged; infrastructure: the worker "
            "was lost or restarted).",
            ["kind"],
            registry=r,
        )
        self.requeues = Counter(
            "vahana_task_requeues",
            "Failed attempts retried: the task went back to the queue, by failure kind.",
            ["kind"],
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "vahana_task_dispatch_latency_seconds",
            "Time from a task being ready to run (submitted, or requeued and past its retry "
            "backoff) to its assignment to a worker.",
            buckets=DISPATCH_BUCKETS,
            registry=r,
        )
        self.task_duration = Histogram(
            "vahana_task_duration_seconds",
            "Time from a task's last attempt starting (RUNNING) to its final phase, by that phase.",
            ["phase"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.heartbeats = Counter(
            "vahana_worker_heartbeats_received",
            "Heartbeats received from registered workers, by pool.",
            ["pool"],
            registry=r,
        )
        self.workers_unhealthy = Counter(
            "vahana_workers_marked_unhealthy",
            "Workers marked UNHEALTHY after missing their heartbeats, by pool.",
            ["pool"],
            registry=r,
        )
        self.workers_quarantined = Counter(
            "vahana_workers_quarantined",
            "Workers quarantined because their attempts all failed in the worker, by pool.",
            ["pool"],
            registry=r,
        )
        grpc_labels = ["grpc_service", "grpc_method", "grpc_type"]
        self.grpc_started = Counter(
            "vahana_grpc_server_started",
            "RPCs started on the scheduler's gRPC server.",
            grpc_labels,
            registry=r,
        )
        self.grpc_handled = Counter(
            "vahana_grpc_server_handled",
            "RPCs completed on the scheduler's gRPC server, by status code.",
            [*grpc_labels, "grpc_code"],
            registry=r,
        )
        self.grpc_received = Counter(
            "vahana_grpc_server_msg_received",
            "Messages received on the scheduler's client-streaming and bidirectional RPCs "
            "(StreamTaskStatus: one per status report).",
            grpc_labels,
            registry=r,
        )
        self.grpc_seconds = Histogram(
            "vahana_grpc_server_handling_seconds",
            "Time the server took for an RPC, from the request to the status "
            "(PollForTask includes its long-poll wait).",
            grpc_labels,
            buckets=GRPC_BUCKETS,
            registry=r,
        )
        pool_labels = ["pool_type", "operation"]
        self.pool_operations = Counter(
            "vahana_pool_operations",
            "Calls to pool adapters (start, stop, list, status, close), by pool type.",
            pool_labels,
            registry=r,
        )
        self.pool_errors = Counter(
            "vahana_pool_operation_errors",
            "Pool adapter calls that raised (a refused sbatch, ssh or Job create…).",
            pool_labels,
            registry=r,
        )
        self.pool_seconds = Histogram(
            "vahana_pool_operation_duration_seconds",
            "Time a pool adapter call took.",
            pool_labels,
            buckets=POOL_BUCKETS,
            registry=r,
        )

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (for tests and debugging)."""
        return prometheus_client.generate_latest(self.registry)
