"""Protobuf messages ↔ core records. The only module that knows both shapes."""

from __future__ import annotations

import dataclasses
import math

from google.protobuf import duration_pb2, timestamp_pb2

from vahana.core import arrays, fairshare, models
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb
from vahana.rpc import checks
from vahana.scheduling import records

NANOS = 1_000_000_000


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * NANOS))
    return stamp


def duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(seconds * NANOS))
    return value


LAST_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, the end of protobuf's Timestamp range
LONGEST_DURATION = 315_576_000_000  # ±10,000 years, protobuf's Duration range


def seconds_of(value: timestamp_pb2.Timestamp | duration_pb2.Duration, field: str = "") -> float:
    """Seconds of a Timestamp or Duration; InvalidArgument naming `field` if it is not valid."""
    try:
        seconds = float(value.ToNanoseconds()) / NANOS
    except ValueError as error:
        raise checks.InvalidArgument(f"{field or 'time'}: {error}") from error
    if isinstance(value, timestamp_pb2.Timestamp) and not 0 <= seconds <= LAST_TIMESTAMP:
        raise checks.InvalidArgument(f"{field or 'time'}: must be between 1970 and 9999")
    if isinstance(value, duration_pb2.Duration) and abs(seconds) > LONGEST_DURATION:
        raise checks.InvalidArgument(f"{field or 'duration'}: out of range")
    return seconds


def resources_to_pb(need: models.Resources) -> pb.ResourceRequirements:
    return pb.ResourceRequirements(
        cpu_cores=need.cpu_cores,
        memory_bytes=need.memory_bytes,
        gpus=need.gpus,
        labels=dict(need.labels),
        preferred_labels=dict(need.preferred_labels),
    )


def resources_of(message: pb.ResourceRequirements | pb.WorkerCapabilities) -> models.Resources:
    preferred = getattr(message, "preferred_labels", {})
    return models.Resources(
        cpu_cores=message.cpu_cores,
        memory_bytes=message.memory_bytes,
        gpus=message.gpus,
        labels=dict(message.labels),
        preferred_labels=dict(preferred),
    )


def limits_to_pb(limits: models.Limits) -> pb.ResourceLimits:
    return pb.ResourceLimits(
        cpu_seconds=limits.cpu_seconds,
        memory_bytes=limits.memory_bytes,
        processes=limits.processes,
        open_files=limits.open_files,
        file_size_bytes=limits.file_size_bytes,
    )


def limits_of(message: pb.ResourceLimits) -> models.Limits:
    return models.Limits(
        cpu_seconds=message.cpu_seconds,
        memory_bytes=message.memory_bytes,
        processes=message.processes,
        open_files=message.open_files,
        file_size_bytes=message.file_size_bytes,
    )


def task_to_pb(task: models.TaskRecord) -> pb.Task:
    spec = task.spec
    message = pb.Task(
        id=task.id,
        command=spec.command,
        input_files=[
            pb.FileTransfer(source=f.source, destination=f.destination) for f in spec.input_files
        ],
        output_files=[
            pb.FileTransfer(source=f.source, destination=f.destination) for f in spec.output_files
        ],
        environment=dict(spec.environment),
        requirements=resources_to_pb(spec.resources),
        priority=spec.priority,
        attempt=task.attempt,
        name=spec.name,
        experiment_id=spec.experiment_id,
    )
    if spec.deadline is not None:
        message.deadline.CopyFrom(timestamp(spec.deadline))
    if spec.timeout_seconds:
        message.timeout.CopyFrom(duration(spec.timeout_seconds))
    if spec.limits != models.Limits():
        message.limits.CopyFrom(limits_to_pb(spec.limits))
    return message


def spec_of(message: pb.Task) -> models.TaskSpec:
    return models.TaskSpec(
        name=message.name,
        command=message.command,
        input_files=tuple(
            models.FileTransfer(f.source, f.destination) for f in message.input_files
        ),
        output_files=tuple(
            models.FileTransfer(f.source, f.destination) for f in message.output_files
        ),
        environment=dict(message.environment),
        resources=resources_of(message.requirements),
        priority=message.priority,
        deadline=seconds_of(message.deadline, "spec.deadline")
        if message.HasField("deadline")
        else None,
        timeout_seconds=seconds_of(message.timeout, "spec.timeout")
        if message.HasField("timeout")
        else 0.0,
        experiment_id=message.experiment_id,
        limits=limits_of(message.limits),
    )


def retry_of(message: tasks_pb.RetryPolicy, default: models.RetryPolicy) -> models.RetryPolicy:
    return models.RetryPolicy(
        max_task_retries=message.max_task_retries,
        max_infra_retries=message.max_infra_retries
        if message.max_infra_retries or message.HasField("backoff")
        else default.max_infra_retries,
        backoff_seconds=seconds_of(message.backoff, "retry.backoff")
        if message.HasField("backoff")
        else default.backoff_seconds,
        max_backoff_seconds=seconds_of(message.max_backoff, "retry.max_backoff")
        if message.HasField("max_backoff")
        else default.max_backoff_seconds,
    )


def retry_to_pb(policy: models.RetryPolicy) -> tasks_pb.RetryPolicy:
    return tasks_pb.RetryPolicy(
        max_task_retries=policy.max_task_retries,
        max_infra_retries=policy.max_infra_retries,
        backoff=duration(policy.backoff_seconds),
        max_backoff=duration(policy.max_backoff_seconds),
    )


def submission_of(message: tasks_pb.TaskSubmission) -> models.Submission:
    retry = (
        retry_of(message.retry, models.RetryPolicy())
        if message.HasField("retry")
        else models.RetryPolicy()
    )
    spec = spec_of(message.spec)
    if message.queue or message.array or message.depends_on:
        spec = dataclasses.replace(
            spec,
            queue=message.queue,
            array=message.array,
            index=message.index,
            depends_on=tuple(dependency_of(d) for d in message.depends_on),
        )
    return models.Submission(
        spec=spec,
        key=message.key,
        retry=retry,
        pool=message.pool,
        namespace=message.namespace,
    )


def submission_to_pb(submission: models.Submission) -> tasks_pb.TaskSubmission:
    record = models.TaskRecord(id="", spec=submission.spec, created_at=0.0, seq=0)
    return tasks_pb.TaskSubmission(
        key=submission.key,
        spec=task_to_pb(record),
        retry=retry_to_pb(submission.retry),
        pool=submission.pool,
        namespace=submission.namespace,
        queue=submission.spec.queue,
        array=submission.spec.array,
        index=submission.spec.index,
        depends_on=[dependency_to_pb(d) for d in submission.spec.depends_on],
    )


def dependency_of(message: tasks_pb.Dependency) -> models.Dependency:
    condition = models.Condition.AFTER_ANY if message.after_any else models.Condition.AFTER_OK
    return models.Dependency(message.name, condition, message.same_index)


def dependency_to_pb(dependency: models.Dependency) -> tasks_pb.Dependency:
    return tasks_pb.Dependency(
        name=dependency.name,
        after_any=dependency.condition == models.Condition.AFTER_ANY,
        same_index=dependency.same_index,
    )


def array_info(name: str, summary: arrays.Summary) -> tasks_pb.TaskInfo:
    """An array as one TaskInfo: its name, its phase, and what its instances add up to."""
    P = models.TaskPhase
    counts = summary.counts
    return tasks_pb.TaskInfo(
        name=name,
        array=name,
        status=pb.TaskStatus.Value(summary.phase.value),
        array_status=tasks_pb.ArrayStatus(
            total=summary.total,
            pending=counts.get(P.PENDING, 0),
            running=counts.get(P.ASSIGNED, 0) + counts.get(P.RUNNING, 0),
            completed=counts.get(P.COMPLETED, 0),
            failed=counts.get(P.FAILED, 0)
            + counts.get(P.TIMED_OUT, 0)
            + counts.get(P.UPSTREAM_FAILED, 0),
            cancelled=counts.get(P.CANCELLED, 0),
            failed_indices=summary.failed_indices[: arrays.FAILED_INDICES_SHOWN],
            progress=summary.progress,
        ),
    )


def task_info(
    task: models.TaskRecord, pending_reason: str = "", *, with_spec: bool = True
) -> tasks_pb.TaskInfo:
    """The API's view of a task. `with_spec=False` leaves out what it was submitted with (the
    command, environment, resources, limits, files): a run's summary of 100,000 tasks does not
    show it, and it is most of each record's memory."""
    info = tasks_pb.TaskInfo(
        id=task.id,
        name=task.spec.name,
        key=task.key,
        namespace=task.namespace,
        pool=task.pool,
        status=pb.TaskStatus.Value(task.phase.value),
        attempt=task.attempt,
        worker_id=task.worker_id,
        exit_code=task.exit_code or 0,
        has_exit_code=task.exit_code is not None,
        message=task.message,
        output_tail=task.output_tail,
        pending_reason=pending_reason,
        created_at=timestamp(task.created_at),
        task_failures=task.task_failures,
        infra_failures=task.infra_failures,
        spec=task_to_pb(task) if with_spec else None,
        retry=retry_to_pb(task.retry),
        queue=fairshare.queue_of(task),
        array=task.spec.array,
        index=task.spec.index,
        depends_on=[dependency_to_pb(d) for d in task.spec.depends_on],
        output_log=task.output_log,
    )
    if task.started_at is not None:
        info.started_at.CopyFrom(timestamp(task.started_at))
    if task.finished_at is not None:
        info.finished_at.CopyFrom(timestamp(task.finished_at))
        if task.started_at is not None:
            info.duration.CopyFrom(duration(max(0.0, task.finished_at - task.started_at)))
    return info


def worker_info(worker: models.WorkerRecord) -> pb.WorkerInfo:
    capacity = worker.capacity
    info = pb.WorkerInfo(
        worker_id=worker.id,
        status=pb.WorkerStatus.Value(worker.state.value),
        capabilities=pb.WorkerCapabilities(
            cpu_cores=capacity.cpu_cores,
            memory_bytes=capacity.memory_bytes,
            gpus=capacity.gpus,
            labels=dict(capacity.labels),
            max_concurrent_tasks=worker.max_tasks,
            prefetch=worker.prefetch,
        ),
        metrics=pb.WorkerMetrics(
            cpu_usage=worker.metrics.cpu_usage,
            memory_usage=worker.metrics.memory_usage,
            active_tasks=len(worker.leases),
            memory_used_bytes=worker.metrics.memory_used_bytes,
            load_average=worker.metrics.load_average,
        ),
        pool=worker.pool,
        hostname=worker.hostname,
        active_task_ids=sorted(worker.leases),
        registered_at=timestamp(worker.registered_at),
        experiment_id=worker.experiment_id,
        compute_resource_id=worker.compute_resource_id,
        status_message=worker.quarantine_reason,
    )
    if worker.metrics.timestamp:
        info.metrics.timestamp.CopyFrom(timestamp(worker.metrics.timestamp))
    if worker.allocation_ends_at is not None:
        info.capabilities.allocation_ends_at.CopyFrom(timestamp(worker.allocation_ends_at))
    if worker.last_heartbeat is not None:
        info.last_heartbeat.CopyFrom(timestamp(worker.last_heartbeat))
    return info


def registration_of(request: pb.RegisterWorkerRequest) -> records.Registration:
    caps = request.capabilities
    ends = (
        seconds_of(caps.allocation_ends_at, "capabilities.allocation_ends_at")
        if caps.HasField("allocation_ends_at")
        else None
    )
    return records.Registration(
        worker_id=request.worker_id,
        capacity=resources_of(caps),
        max_tasks=caps.max_concurrent_tasks or 1,
        pool=request.pool,
        hostname=request.hostname,
        allocation_ends_at=ends,
        experiment_id=request.experiment_id,
        compute_resource_id=request.compute_resource_id,
        running=tuple((lease.task_id, lease.attempt) for lease in request.running_tasks),
        prefetch=caps.prefetch,
    )


def report_of(update: pb.UpdateTaskStatusRequest) -> records.StatusReport:
    kind = (
        models.FailureKind(pb.FailureKind.Name(update.failure_kind))
        if update.failure_kind
        else None
    )
    final = update.status not in (pb.RUNNING, pb.ASSIGNED)
    return records.StatusReport(
        task_id=update.task_id,
        attempt=update.attempt,
        phase=models.TaskPhase(pb.TaskStatus.Name(update.status)),
        exit_code=update.exit_code if final else None,
        message=update.message,
        output_tail=update.output_tail,
        output_log=update.output_log,
        failure_kind=kind,
        timestamp=seconds_of(update.timestamp, "timestamp")
        if update.HasField("timestamp")
        else None,
    )


def metrics_of(message: pb.WorkerMetrics, now: float) -> models.WorkerMetrics:
    return models.WorkerMetrics(
        cpu_usage=_percent(message.cpu_usage),
        memory_usage=_percent(message.memory_usage),
        active_tasks=message.active_tasks,
        memory_used_bytes=message.memory_used_bytes,
        load_average=message.load_average if math.isfinite(message.load_average) else 0.0,
        timestamp=seconds_of(message.timestamp, "metrics.timestamp")
        if message.HasField("timestamp")
        else now,
    )


def leases_to_pb(leases: list[records.Lease]) -> list[pb.TaskLease]:
    return [pb.TaskLease(task_id=task_id, attempt=attempt) for task_id, attempt in leases]


def _percent(value: float) -> float:
    """A reported percentage as a sane number: figures from a worker are not trusted blindly."""
    return min(100.0, max(0.0, value)) if math.isfinite(value) else 0.0
