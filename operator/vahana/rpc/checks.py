"""Validation of incoming RPCs: a malformed request gets INVALID_ARGUMENT naming the field.

Free text a worker reports (a status message, its output, a reason) is cut to its bound instead:
refusing it would leave the worker retrying a report it cannot shorten.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from vahana.core import bounds, validation
from vahana.proto import worker_pb2 as pb

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,252}$")
MAX_WAIT_SECONDS = 60.0
MAX_TASKS_PER_POLL = 1000
MAX_OUTPUT_TAIL = bounds.OUTPUT_TAIL_BYTES
_REPORTABLE = {pb.PENDING, pb.RUNNING, pb.COMPLETED, pb.FAILED, pb.CANCELLED, pb.TIMED_OUT}
# The enums' values once: `EnumTypeWrapper.values()` builds a list at every call, and these
# are asked for every status update.
FAILURE_KINDS = frozenset(pb.FailureKind.values())
TASK_STATUSES = frozenset(pb.TaskStatus.values())
WORKER_STATUSES = frozenset(pb.WorkerStatus.values())


class InvalidArgument(ValueError):
    """A request field is malformed; the message names it."""


def identifier(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument(f"{field}: required")
    if not _ID.match(value):
        raise InvalidArgument(
            f"{field}: {value[:40]!r} is not a valid id — use letters, digits and . _ : @ / -"
            " (at most 253 characters)"
        )


def registration(request: pb.RegisterWorkerRequest) -> None:
    identifier(request.worker_id, "worker_id")
    caps = request.capabilities
    for field in ("cpu_cores", "memory_bytes", "gpus", "max_concurrent_tasks", "prefetch"):
        value = getattr(caps, field)
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument(f"capabilities.{field}: must be a number ≥ 0")
    for field in ("max_concurrent_tasks", "prefetch"):
        if getattr(caps, field) > MAX_TASKS_PER_POLL:
            raise InvalidArgument(f"capabilities.{field}: at most {MAX_TASKS_PER_POLL}")
    for field, most in (
        ("hostname", bounds.HOSTNAME_CHARS),
        ("pool", bounds.POOL_CHARS),
        ("experiment_id", bounds.EXPERIMENT_ID_CHARS),
        ("compute_resource_id", bounds.EXPERIMENT_ID_CHARS),
        ("version", bounds.VERSION_CHARS),
    ):
        if len(getattr(request, field)) > most:
            raise InvalidArgument(f"{field}: at most {most} characters")
    problems = validation.label_problems(dict(caps.labels), "capabilities.labels")
    if problems:
        raise InvalidArgument("; ".join(problems[:5]))
    leases(request.running_tasks, "running_tasks")


def poll(request: pb.PollForTaskRequest) -> None:
    identifier(request.worker_id, "worker_id")
    if not 0 <= request.max_tasks <= MAX_TASKS_PER_POLL:
        raise InvalidArgument(f"max_tasks: must be between 0 and {MAX_TASKS_PER_POLL}")
    if request.wait.seconds < 0 or request.wait.nanos < 0:
        raise InvalidArgument("wait: must not be negative")


def update(request: pb.UpdateTaskStatusRequest, field: str = "") -> None:
    prefix = f"{field}." if field else ""
    identifier(request.task_id, f"{prefix}task_id")
    identifier(request.worker_id, f"{prefix}worker_id")
    if request.status not in _REPORTABLE:
        raise InvalidArgument(
            f"{prefix}status: {_status_name(request.status)}"
            " cannot be reported — use RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT,"
            " or PENDING to hand back a task not started"
        )
    if request.attempt < 1:
        raise InvalidArgument(f"{prefix}attempt: must be the task's attempt number (≥ 1)")
    if request.failure_kind not in FAILURE_KINDS:
        raise InvalidArgument(f"{prefix}failure_kind: unknown value {request.failure_kind}")
    request.message = bounds.head(request.message, bounds.MESSAGE_BYTES)
    request.output_tail = tail(request.output_tail)
    if len(request.output_files) > bounds.FILES:
        del request.output_files[bounds.FILES :]
    for index, path in enumerate(request.output_files):
        request.output_files[index] = bounds.head(path, bounds.PATH_BYTES)
    if request.output_log and (
        validation.storage_url_problem(request.output_log)
        or len(request.output_log.encode()) > bounds.PATH_BYTES
    ):
        raise InvalidArgument(
            f"{prefix}output_log: must be an s3:// or sftp:// URL of at most "
            f"{bounds.PATH_BYTES} bytes, or empty"
        )


def _status_name(status: int) -> str:
    return pb.TaskStatus.Name(status) if status in TASK_STATUSES else str(status)


def batch(request: pb.BatchUpdateTaskStatusRequest) -> None:
    identifier(request.worker_id, "worker_id")
    if not 0 <= request.max_tasks <= MAX_TASKS_PER_POLL:
        raise InvalidArgument(f"max_tasks: must be between 0 and {MAX_TASKS_PER_POLL}")
    for index, item in enumerate(request.updates):
        if item.worker_id and item.worker_id != request.worker_id:
            raise InvalidArgument(
                f"updates[{index}].worker_id: {item.worker_id!r} differs from the batch's worker_id"
            )
        if not item.worker_id:
            item.worker_id = request.worker_id
        update(item, f"updates[{index}]")


def heartbeat(request: pb.HeartbeatRequest) -> None:
    identifier(request.worker_id, "worker_id")
    leases(request.running_tasks, "running_tasks")


def worker_status(request: pb.UpdateWorkerStatusRequest) -> None:
    identifier(request.worker_id, "worker_id")
    if request.status not in WORKER_STATUSES or request.status == pb.WORKER_STATUS_UNSPECIFIED:
        raise InvalidArgument("status: give AVAILABLE, BUSY, DRAINING, UNHEALTHY or TERMINATED")
    request.reason = bounds.head(request.reason, bounds.MESSAGE_BYTES)


MAX_OUTPUT_CHUNKS = 1000
MAX_OUTPUT_BYTES_PER_CALL = 8 << 20
"""Output one AppendTaskOutput call may carry (workers send at most 1 MiB)."""


def output(request: pb.AppendTaskOutputRequest) -> None:
    identifier(request.worker_id, "worker_id")
    if len(request.chunks) > MAX_OUTPUT_CHUNKS:
        raise InvalidArgument(f"chunks: at most {MAX_OUTPUT_CHUNKS} per call")
    total = 0
    for index, chunk in enumerate(request.chunks):
        identifier(chunk.task_id, f"chunks[{index}].task_id")
        if chunk.attempt < 1:
            raise InvalidArgument(f"chunks[{index}].attempt: must be ≥ 1")
        if chunk.offset < 0:
            raise InvalidArgument(f"chunks[{index}].offset: must be ≥ 0")
        total += len(chunk.data)
    if total > MAX_OUTPUT_BYTES_PER_CALL:
        raise InvalidArgument(
            f"chunks: {total} bytes in one call; send at most {MAX_OUTPUT_BYTES_PER_CALL}"
        )


def leases(items: Iterable[pb.TaskLease], field: str) -> None:
    for index, lease in enumerate(items):
        identifier(lease.task_id, f"{field}[{index}].task_id")
        if lease.attempt < 1:
            raise InvalidArgument(f"{field}[{index}].attempt: must be ≥ 1")


def tail(text: str) -> str:
    """The output a task leaves: its last MAX_OUTPUT_TAIL bytes."""
    return bounds.tail(text, MAX_OUTPUT_TAIL)
