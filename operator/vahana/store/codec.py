"""Rows ↔ records: the one place that knows how a record is laid out in SQL columns."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from vahana.core import fairshare, models

TASK_COLUMNS = (
    "id",
    "seq",
    "key",
    "name",
    "namespace",
    "pool",
    "spec",
    "retry",
    "upstream",
    "phase",
    "attempt",
    "worker_id",
    "exit_code",
    "message",
    "output_tail",
    "created_at",
    "started_at",
    "finished_at",
    "assigned_at",
    "task_failures",
    "infra_failures",
    "not_before",
    "cancel_requested",
    "output_log",
)
TASK_MUTABLE = TASK_COLUMNS[9:]
ATTEMPT_COLUMNS = (
    "task_id",
    "attempt",
    "worker_id",
    "assigned_at",
    "phase",
    "started_at",
    "finished_at",
    "exit_code",
    "failure_kind",
    "message",
)
WORKER_COLUMNS = (
    "id",
    "pool",
    "hostname",
    "state",
    "capacity",
    "max_tasks",
    "registered_at",
    "last_seen",
    "allocation_ends_at",
    "experiment_id",
    "compute_resource_id",
    "leases",
    "quarantine_reason",
)
QUEUE_USAGE_COLUMNS = ("queue", "decayed", "as_of")


def spec_to_json(spec: models.TaskSpec) -> str:
    return json.dumps(_spec_dict(spec), separators=(",", ":"))


def _spec_dict(spec: models.TaskSpec) -> dict[str, Any]:
    """`dataclasses.asdict(spec)`, spelled out: asdict's generic recursion was most of the cost
    of writing a task (a test keeps the two equal)."""
    need, limits = spec.resources, spec.limits
    return {
        "name": spec.name,
        "command": spec.command,
        "input_files": [
            {"source": f.source, "destination": f.destination} for f in spec.input_files
        ],
        "output_files": [
            {"source": f.source, "destination": f.destination} for f in spec.output_files
        ],
        "environment": dict(spec.environment),
        "resources": {
            "cpu_cores": need.cpu_cores,
            "memory_bytes": need.memory_bytes,
            "gpus": need.gpus,
            "labels": dict(need.labels),
            "preferred_labels": dict(need.preferred_labels),
        },
        "priority": spec.priority,
        "deadline": spec.deadline,
        "timeout_seconds": spec.timeout_seconds,
        "experiment_id": spec.experiment_id,
        "limits": {name: getattr(limits, name) for name in _LIMIT_FIELDS},
        "queue": spec.queue,
        "array": spec.array,
        "index": spec.index,
        "depends_on": [
            {"name": d.name, "condition": d.condition.value, "same_index": d.same_index}
            for d in spec.depends_on
        ],
    }


_LIMIT_FIELDS = tuple(field.name for field in dataclasses.fields(models.Limits))
_LIMIT_NAMES = frozenset(_LIMIT_FIELDS)


_RETRY_FIELDS = tuple(field.name for field in dataclasses.fields(models.RetryPolicy))


def retry_to_json(retry: models.RetryPolicy) -> str:
    """A task's retry policy as stored: `dataclasses.asdict`'s layout, spelled out."""
    return json.dumps({name: getattr(retry, name) for name in _RETRY_FIELDS})


def spec_from_json(text: str) -> models.TaskSpec:
    raw = json.loads(text)
    return models.TaskSpec(
        name=raw["name"],
        command=raw["command"],
        input_files=tuple(models.FileTransfer(**f) for f in raw["input_files"]),
        output_files=tuple(models.FileTransfer(**f) for f in raw["output_files"]),
        environment=raw["environment"],
        resources=resources_from_dict(raw["resources"]),
        priority=raw["priority"],
        deadline=raw["deadline"],
        timeout_seconds=raw["timeout_seconds"],
        experiment_id=raw.get("experiment_id", ""),
        limits=limits_from_dict(raw.get("limits", {})),
        queue=raw.get("queue", ""),
        array=raw.get("array", ""),
        index=raw.get("index", 0),
        depends_on=tuple(
            models.Dependency(d["name"], models.Condition(d["condition"]), d["same_index"])
            for d in raw.get("depends_on", ())
        ),
    )


def limits_from_dict(raw: Mapping[str, Any]) -> models.Limits:
    """Limits from spec JSON; rows written before limits existed have none (defaults)."""
    return models.Limits(**{k: int(v) for k, v in raw.items() if k in _LIMIT_NAMES})


def resources_from_dict(raw: Mapping[str, Any]) -> models.Resources:
    return models.Resources(
        cpu_cores=raw["cpu_cores"],
        memory_bytes=raw["memory_bytes"],
        gpus=raw["gpus"],
        labels=raw.get("labels", {}),
        preferred_labels=raw.get("preferred_labels", {}),
    )


def task_row(task: models.TaskRecord) -> tuple[Any, ...]:
    return (
        task.id,
        task.seq,
        task.key,
        task.spec.name,
        task.namespace,
        task.pool,
        spec_to_json(task.spec),
        retry_to_json(task.retry),
        upstream_to_json(task.upstream),
        *task_mutable_row(task),
    )


def upstream_to_json(upstream: Mapping[str, tuple[str, ...]]) -> str:
    """A dependent's resolved upstream ids (name → ids); "" for a task with none."""
    return json.dumps(upstream, separators=(",", ":")) if upstream else ""


def upstream_from_json(text: str | None) -> dict[str, tuple[str, ...]]:
    return {name: tuple(ids) for name, ids in json.loads(text).items()} if text else {}


def task_mutable_row(task: models.TaskRecord) -> tuple[Any, ...]:
    return (
        task.phase.value,
        task.attempt,
        task.worker_id,
        task.exit_code,
        task.message,
        task.output_tail,
        task.created_at,
        task.started_at,
        task.finished_at,
        task.assigned_at,
        task.task_failures,
        task.infra_failures,
        task.not_before,
        int(task.cancel_requested),
        task.output_log,
    )


def task_from_row(row: Mapping[str, Any]) -> models.TaskRecord:
    return models.TaskRecord(
        id=row["id"],
        spec=spec_from_json(row["spec"]),
        created_at=row["created_at"],
        seq=row["seq"],
        key=row["key"],
        retry=models.RetryPolicy(**json.loads(row["retry"])),
        pool=row["pool"],
        namespace=row["namespace"],
        phase=models.TaskPhase(row["phase"]),
        attempt=row["attempt"],
        worker_id=row["worker_id"],
        exit_code=row["exit_code"],
        message=row["message"],
        output_tail=row["output_tail"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        assigned_at=row["assigned_at"],
        task_failures=row["task_failures"],
        infra_failures=row["infra_failures"],
        not_before=row["not_before"],
        cancel_requested=bool(row["cancel_requested"]),
        upstream=upstream_from_json(row["upstream"]),
        output_log=row["output_log"],
    )


def attempt_row(attempt: models.AttemptRecord) -> tuple[Any, ...]:
    return (
        attempt.task_id,
        attempt.attempt,
        attempt.worker_id,
        attempt.assigned_at,
        attempt.phase.value,
        attempt.started_at,
        attempt.finished_at,
        attempt.exit_code,
        attempt.failure_kind.value if attempt.failure_kind else None,
        attempt.message,
    )


def attempt_from_row(row: Mapping[str, Any]) -> models.AttemptRecord:
    kind = row["failure_kind"]
    return models.AttemptRecord(
        task_id=row["task_id"],
        attempt=row["attempt"],
        worker_id=row["worker_id"],
        assigned_at=row["assigned_at"],
        phase=models.TaskPhase(row["phase"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        exit_code=row["exit_code"],
        failure_kind=models.FailureKind(kind) if kind else None,
        message=row["message"],
    )


def worker_row(worker: models.WorkerRecord) -> tuple[Any, ...]:
    return (
        worker.id,
        worker.pool,
        worker.hostname,
        worker.state.value,
        json.dumps(dataclasses.asdict(worker.capacity)),
        worker.max_tasks,
        worker.registered_at,
        worker.last_seen,
        worker.allocation_ends_at,
        worker.experiment_id,
        worker.compute_resource_id,
        json.dumps(worker.leases),
        worker.quarantine_reason,
    )


def worker_from_row(row: Mapping[str, Any]) -> models.WorkerRecord:
    return models.WorkerRecord(
        id=row["id"],
        capacity=resources_from_dict(json.loads(row["capacity"])),
        max_tasks=row["max_tasks"],
        registered_at=row["registered_at"],
        last_seen=row["last_seen"],
        pool=row["pool"],
        hostname=row["hostname"],
        state=models.WorkerState(row["state"]),
        allocation_ends_at=row["allocation_ends_at"],
        experiment_id=row["experiment_id"],
        compute_resource_id=row["compute_resource_id"],
        leases=json.loads(row["leases"]),
        quarantine_reason=row["quarantine_reason"],
    )


def queue_usage_row(usage: fairshare.SavedUsage) -> tuple[Any, ...]:
    return (usage.queue, usage.decayed, usage.as_of)


def queue_usage_from_row(row: Mapping[str, Any]) -> fairshare.SavedUsage:
    return fairshare.SavedUsage(
        queue=row["queue"], decayed=float(row["decayed"]), as_of=float(row["as_of"])
    )
