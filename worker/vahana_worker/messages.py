"""Pure translations between the protocol's messages and the worker's own types."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from google.protobuf import duration_pb2, timestamp_pb2

from vahana_worker import __version__, executor, limits, settings
from vahana_worker.proto import worker_pb2 as pb

_OUTCOME_STATUS = {
    executor.Outcome.COMPLETED: pb.COMPLETED,
    executor.Outcome.FAILED: pb.FAILED,
    executor.Outcome.TIMED_OUT: pb.TIMED_OUT,
    executor.Outcome.CANCELLED: pb.CANCELLED,
}
_FAILURE_KIND = {
    executor.FailureKind.NONE: pb.FAILURE_KIND_UNSPECIFIED,
    executor.FailureKind.TASK_ERROR: pb.TASK_ERROR,
    executor.FailureKind.INFRASTRUCTURE: pb.INFRASTRUCTURE,
    executor.FailureKind.STAGING: pb.STAGING,
}


def timestamp(unix_seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(unix_seconds * 1e9))
    return stamp


def duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


def seconds_of(value: duration_pb2.Duration) -> float:
    return float(value.seconds) + float(value.nanos) / 1e9


def limits_of(message: pb.ResourceLimits) -> limits.Limits:
    """A task's limits as sent (0: the worker's default); negative values count as unset."""
    return limits.Limits(
        cpu_seconds=max(0, message.cpu_seconds),
        memory_bytes=max(0, message.memory_bytes),
        processes=max(0, message.processes),
        open_files=max(0, message.open_files),
        file_size_bytes=max(0, message.file_size_bytes),
    )


def spec_from_task(
    task: pb.Task, *, default_timeout: float, default_limits: limits.Limits | None = None
) -> executor.TaskSpec:
    """The executor's view of a Task; a zero timeout or limit means the worker's default."""
    timeout = seconds_of(task.timeout) if task.HasField("timeout") else 0.0
    return executor.TaskSpec(
        task_id=task.id,
        attempt=task.attempt,
        command=task.command,
        timeout=timeout if timeout > 0 else default_timeout,
        environment=dict(task.environment),
        inputs=tuple((f.source, f.destination) for f in task.input_files),
        outputs=tuple((f.source, f.destination) for f in task.output_files),
        limits=limits_of(task.limits).over(default_limits or limits.Limits()),
    )


def running_update(
    *, worker_id: str, task_id: str, attempt: int, now: float
) -> pb.UpdateTaskStatusRequest:
    return pb.UpdateTaskStatusRequest(
        task_id=task_id,
        worker_id=worker_id,
        status=pb.RUNNING,
        attempt=attempt,
        timestamp=timestamp(now),
    )


def hand_back_update(
    *, worker_id: str, task_id: str, attempt: int, why: str, now: float
) -> pb.UpdateTaskStatusRequest:
    """Gives back a task the worker was handed but has not started (status PENDING)."""
    return pb.UpdateTaskStatusRequest(
        task_id=task_id,
        worker_id=worker_id,
        status=pb.PENDING,
        attempt=attempt,
        message=why,
        timestamp=timestamp(now),
    )


def final_update(
    *, worker_id: str, task_id: str, attempt: int, result: executor.Result, now: float
) -> pb.UpdateTaskStatusRequest:
    return pb.UpdateTaskStatusRequest(
        task_id=task_id,
        worker_id=worker_id,
        status=_OUTCOME_STATUS[result.outcome],
        attempt=attempt,
        exit_code=result.exit_code,
        message=result.message,
        output_tail=result.output_tail,
        timestamp=timestamp(now),
        failure_kind=_FAILURE_KIND[result.failure_kind],
        output_files=list(result.output_files),
        output_log=result.output_log,
    )


def is_final(update: pb.UpdateTaskStatusRequest) -> bool:
    return update.status in (pb.COMPLETED, pb.FAILED, pb.CANCELLED, pb.TIMED_OUT)


def leases(pairs: Iterable[tuple[str, int]]) -> list[pb.TaskLease]:
    return [pb.TaskLease(task_id=task_id, attempt=attempt) for task_id, attempt in pairs]


def capabilities(config: settings.Settings) -> pb.WorkerCapabilities:
    caps = pb.WorkerCapabilities(
        cpu_cores=config.cpu_cores,
        memory_bytes=config.memory_bytes,
        gpus=config.gpus,
        labels=dict(config.labels),
        max_concurrent_tasks=config.max_tasks,
        prefetch=config.prefetch,
    )
    if config.allocation_ends_at is not None:
        caps.allocation_ends_at.CopyFrom(timestamp(config.allocation_ends_at))
    return caps


def register_request(
    config: settings.Settings, running: Iterable[tuple[str, int]]
) -> pb.RegisterWorkerRequest:
    return pb.RegisterWorkerRequest(
        worker_id=config.worker_id,
        capabilities=capabilities(config),
        experiment_id=config.experiment_id,
        compute_resource_id=config.compute_resource_id,
        hostname=socket.gethostname(),
        pool=config.pool,
        version=__version__,
        running_tasks=leases(running),
        pid=os.getpid(),
    )
