"""Records as the pages show them: plain JSON-ready dicts, built by pure functions.

Text from users (names, commands, output, messages) goes out as JSON strings and is put on the
page as text, never as markup (assets/*.js use textContent only; the CSP forbids inline
scripts besides). Environment values are not shown: they often carry secrets, and the
dashboard's reads need no token; `vahana get task NAME -o yaml` shows them to a client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from vahana.core import models
from vahana.scheduling import pool_manager

NO_POOL = "(none)"


def pool_label(pool: str) -> str:
    return pool or NO_POOL


def _duration(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 3)


def task_summary(task: models.TaskRecord) -> dict[str, Any]:
    """A row of the task list."""
    return {
        "id": task.id,
        "name": task.spec.name,
        "phase": task.phase.value,
        "pool": task.pool,
        "priority": task.spec.priority,
        "attempt": task.attempt,
        "worker": task.worker_id,
        "exit_code": task.exit_code,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "duration": _duration(task.started_at, task.finished_at),
        "reason": task.pending_reason or _last_line(task.message),
    }


def task_detail(
    task: models.TaskRecord,
    attempts: Iterable[models.AttemptRecord],
    *,
    pending_reason: str,
    workers: Mapping[str, models.WorkerRecord],
) -> dict[str, Any]:
    """The task page: its spec, status, attempts (with their worker's pool), output tail."""
    spec = task.spec
    need = spec.resources
    return {
        **task_summary(task),
        "namespace": task.namespace,
        "key": task.key,
        "message": task.message,
        "pending_reason": pending_reason,
        "output_tail": task.output_tail,
        "cancel_requested": task.cancel_requested,
        "final": task.is_final,
        "failures": {"task": task.task_failures, "infrastructure": task.infra_failures},
        "spec": {
            "command": spec.command,
            "priority": spec.priority,
            "deadline": spec.deadline,
            "timeout_seconds": spec.timeout_seconds,
            "experiment_id": spec.experiment_id,
            "resources": {
                "cpu": need.cpu_cores,
                "memory_bytes": need.memory_bytes,
                "gpus": need.gpus,
                "labels": dict(need.labels),
                "preferred_labels": dict(need.preferred_labels),
            },
            "environment": sorted(spec.environment),
            "input_files": [[f.source, f.destination] for f in spec.input_files],
            "output_files": [[f.source, f.destination] for f in spec.output_files],
            "retry": {
                "max_task_retries": task.retry.max_task_retries,
                "max_infra_retries": task.retry.max_infra_retries,
                "backoff_seconds": task.retry.backoff_seconds,
            },
        },
        "attempts": [
            {
                "attempt": a.attempt,
                "worker": a.worker_id,
                "pool": workers[a.worker_id].pool if a.worker_id in workers else None,
                "phase": a.phase.value,
                "assigned_at": a.assigned_at,
                "started_at": a.started_at,
                "finished_at": a.finished_at,
                "duration": _duration(a.started_at, a.finished_at),
                "exit_code": a.exit_code,
                "failure_kind": a.failure_kind.value if a.failure_kind else None,
                "why": a.message,
            }
            for a in attempts
        ],
    }


def worker_row(worker: models.WorkerRecord) -> dict[str, Any]:
    """The columns of `vahana get workers`, and a little more."""
    metrics = worker.metrics
    return {
        "id": worker.id,
        "pool": worker.pool,
        "status": worker.state.value,
        "active": len(worker.leases),
        "slots": worker.max_tasks,
        "cpu_percent": round(metrics.cpu_usage, 1),
        "memory_percent": round(metrics.memory_usage, 1),
        "memory_used_bytes": metrics.memory_used_bytes,
        "last_heartbeat": worker.last_heartbeat,
        "registered_at": worker.registered_at,
        "hostname": worker.hostname,
        "allocation_ends_at": worker.allocation_ends_at,
        "tasks": sorted(worker.leases),
    }


def pool_rows(
    summaries: Iterable[pool_manager.PoolSummary], workers: Iterable[models.WorkerRecord]
) -> list[dict[str, Any]]:
    """The columns of `kubectl get workerpools` (type, min, max, ready, busy, desired, error)
    for managed pools, then a row per pool name that workers registered with and no manager
    runs (a `--workers N` local pool, workers started by hand)."""
    counted: dict[str, dict[str, int]] = {}
    for worker in workers:
        counts = counted.setdefault(worker.pool, {"workers": 0, "busy": 0, "ready": 0})
        counts["workers"] += 1
        counts["busy"] += 1 if worker.leases else 0
        counts["ready"] += 1 if worker.state is not models.WorkerState.DRAINING else 0
    rows: list[dict[str, Any]] = []
    for pool in summaries:
        status = pool.status
        rows.append(
            {
                "key": pool.key,
                "namespace": pool.namespace,
                "name": pool.name,
                "type": pool.kind,
                "min": pool.minimum,
                "max": pool.maximum,
                "tasks_per_worker": pool.tasks_per_worker,
                "desired": status.get("desired"),
                "ready": status.get("ready"),
                "busy": status.get("busy"),
                "starting": status.get("starting"),
                "error": status.get("lastError") or "",
                "registered": counted.pop(pool.key, {}).get("workers", 0),
                "managed": True,
                "removing": pool.removing,
            }
        )
    for name, counts in sorted(counted.items()):
        rows.append(
            {
                "key": name,
                "namespace": "",
                "name": pool_label(name),
                "type": "unmanaged",
                "min": None,
                "max": None,
                "tasks_per_worker": None,
                "desired": None,
                "ready": counts["ready"],
                "busy": counts["busy"],
                "starting": None,
                "error": "",
                "registered": counts["workers"],
                "managed": False,
                "removing": False,
            }
        )
    return rows


def _last_line(text: str, width: int = 120) -> str:
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1].strip()
    return line if len(line) <= width else "…" + line[-(width - 1) :]
