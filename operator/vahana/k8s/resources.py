"""Names of the custom resources and the pure builders of their status."""

from __future__ import annotations

import datetime
import re
import zlib
from collections.abc import Mapping
from typing import Any

from vahana.core import models

GROUP = "vahana.dev"
VERSION = "v1alpha1"
TASKS = "tasks"
POOLS = "workerpools"
WORKERS = "workers"
QUEUES = "queues"
FINALIZER = "vahana.dev/finalizer"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
POOL_LABEL = "vahana.dev/pool"

PHASES = {
    models.TaskPhase.PENDING: "Pending",
    models.TaskPhase.ASSIGNED: "Assigned",
    models.TaskPhase.RUNNING: "Running",
    models.TaskPhase.COMPLETED: "Completed",
    models.TaskPhase.FAILED: "Failed",
    models.TaskPhase.CANCELLED: "Cancelled",
    models.TaskPhase.TIMED_OUT: "TimedOut",
    models.TaskPhase.UPSTREAM_FAILED: "UpstreamFailed",
}
OUTPUT_TAIL_LIMIT = 4096
"""Bytes of output kept on the Task object; the whole tail stays in the store."""
_NOT_NAME = re.compile(r"[^a-z0-9.-]+")


def plain(value: Any) -> Any:
    """kopf's views of an object as plain dicts and lists, as the manifest parser reads YAML."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def timestamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def task_status(task: models.TaskRecord, pending_reason: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {
        "taskId": task.id,
        "phase": PHASES[task.phase],
        "attempt": task.attempt,
        "worker": task.worker_id or None,
        "pool": task.pool or None,
        "startTime": timestamp(task.started_at),
        "completionTime": timestamp(task.finished_at),
        "exitCode": task.exit_code,
        "message": task.message or None,
        "pendingReason": pending_reason or None,
        "outputTail": task.output_tail[-OUTPUT_TAIL_LIMIT:] if task.output_tail else None,
        "outputLog": task.output_log or None,
    }
    return status


def worker_object_name(worker_id: str) -> str:
    """A valid object name for any worker id (lower case, DNS subdomain, ≤ 253)."""
    name = _NOT_NAME.sub("-", worker_id.lower()).strip("-.")
    if name == worker_id and len(name) <= 253:
        return name
    suffix = f"{zlib.crc32(worker_id.encode()):08x}"
    return f"{name[:200] or 'worker'}-{suffix}"


def worker_status(worker: models.WorkerRecord) -> dict[str, Any]:
    capacity = worker.capacity
    return {
        "workerId": worker.id,
        "pool": worker.pool.split("/", 1)[-1] if worker.pool else None,
        "status": worker.state.value,
        "activeTasks": len(worker.leases),
        "cpuUsage": round(worker.metrics.cpu_usage, 1),
        "memoryUsage": round(worker.metrics.memory_usage, 1),
        "lastHeartbeat": timestamp(worker.last_heartbeat),
        "hostname": worker.hostname or None,
        "reason": worker.quarantine_reason[:1024] or None,
        "allocationEndsAt": timestamp(worker.allocation_ends_at),
        "capabilities": {
            "cpu": f"{capacity.cpu_cores:g}",
            "memory": str(capacity.memory_bytes),
            "gpu": capacity.gpus,
            "maxTasks": worker.max_tasks,
            "labels": dict(capacity.labels),
        },
    }


def condition(
    kind: str, ok: bool, reason: str, message: str, *, generation: int | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp(datetime.datetime.now(tz=datetime.UTC).timestamp()),
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    return entry
