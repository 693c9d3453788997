"""The gRPC link to the scheduler: the channel (with keepalive options), per-call deadlines, and
the classification of errors into transient (retry, count towards the circuit breaker) or not.
"""

from __future__ import annotations

import grpc

from vahana_worker import messages, settings
from vahana_worker.proto import worker_pb2 as pb
from vahana_worker.proto import worker_pb2_grpc as pb_grpc

CALL_TIMEOUT = 10.0
"""Deadline of unary calls other than the long poll, in seconds."""
POLL_MARGIN = 10.0
"""Seconds added to the poll's `wait` for its gRPC deadline."""

TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


def code_of(error: grpc.RpcError) -> grpc.StatusCode:
    """The status code of a failed call (errors raised by grpc also implement grpc.Call)."""
    method = getattr(error, "code", None)
    code = method() if callable(method) else None
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def details_of(error: grpc.RpcError) -> str:
    method = getattr(error, "details", None)
    details = method() if callable(method) else None
    return details if isinstance(details, str) else str(error)


def is_transient(error: grpc.RpcError) -> bool:
    """True if the call failed on the way (scheduler unreachable, overloaded, timed out)."""
    return code_of(error) in TRANSIENT_CODES


def channel_options(config: settings.Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", int(config.grpc_keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.grpc_keepalive_timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", int(config.grpc_keepalive_permit_without_streams)),
        ("grpc.http2.max_pings_without_data", 0),
        # gRPC's own reconnect backoff grows to 120 s by default: after a long outage the
        # worker would stay deaf that long once the scheduler is back. Keep it near ours.
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.min_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 10_000),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ]


class SchedulerClient:
    """Thin typed wrapper over the WorkerService stub; one channel, shared by all loops."""

    def __init__(self, config: settings.Settings, *, call_timeout: float = CALL_TIMEOUT) -> None:
        self._config = config
        self._timeout = call_timeout
        self._channel = grpc.insecure_channel(
            config.server_address, options=channel_options(config)
        )
        self._stub = pb_grpc.WorkerServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def register(self, request: pb.RegisterWorkerRequest) -> pb.RegisterWorkerResponse:
        response: pb.RegisterWorkerResponse = self._stub.RegisterWorker(
            request, timeout=self._timeout
        )
        return response

    def poll(self, *, max_tasks: int, wait: float) -> grpc.Future:
        """Starts a long poll; the returned future can be cancelled (e.g. on shutdown)."""
        request = pb.PollForTaskRequest(
            worker_id=self._config.worker_id,
            max_tasks=max_tasks,
            wait=messages.duration(wait),
        )
        future: grpc.Future = self._stub.PollForTask.future(request, timeout=wait + POLL_MARGIN)
        return future

    def batch_update(
        self, updates: list[pb.UpdateTaskStatusRequest], max_tasks: int = 0
    ) -> pb.BatchUpdateTaskStatusResponse:
        request = pb.BatchUpdateTaskStatusRequest(
            worker_id=self._config.worker_id, updates=updates, max_tasks=max_tasks
        )
        response: pb.BatchUpdateTaskStatusResponse = self._stub.BatchUpdateTaskStatus(
            request, timeout=self._timeout
        )
        return response

    def update_task_status(self, update: pb.UpdateTaskStatusRequest) -> pb.UpdateTaskStatusResponse:
        response: pb.UpdateTaskStatusResponse = self._stub.UpdateTaskStatus(
            update, timeout=self._timeout
        )
        return response

    def heartbeat(self, request: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
        response: pb.HeartbeatResponse = self._stub.SendHeartbeat(request, timeout=self._timeout)
        return response

    def update_worker_status(
        self, status: pb.WorkerStatus, reason: str, *, timeout: float | None = None
    ) -> pb.UpdateWorkerStatusResponse:
        request = pb.UpdateWorkerStatusRequest(
            worker_id=self._config.worker_id, status=status, reason=reason
        )
        response: pb.UpdateWorkerStatusResponse = self._stub.UpdateWorkerStatus(
            request, timeout=timeout or self._timeout
        )
        return response

    def close(self) -> None:
        self._channel.close()
