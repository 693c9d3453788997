"""The gRPC link to the scheduler: the channel (with keepalive options and, when configured,
mutual TLS), per-call deadlines, the worker's credentials, and the classification of errors into
transient (retry, count towards the circuit breaker) or not.

Status reports go over one long-lived StreamTaskStatus stream, a report and its answer at a
time, each answer awaited no longer than a call's deadline; a scheduler without the stream is
sent one BatchUpdateTaskStatus call per report instead.

Credentials: RegisterWorker presents the pool's bootstrap secret and gets back a worker token;
every later call carries that token (`authorization: Bearer …`). The token lives only in this
object's memory: it is never logged and never reaches a task.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from vahana_worker import backoff, messages, settings
from vahana_worker.proto import worker_pb2 as pb
from vahana_worker.proto import worker_pb2_grpc as pb_grpc

_log = logging.getLogger(__name__)

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


MAX_RECONNECT_BACKOFF = 10.0
"""Seconds: the most gRPC waits between two connection attempts (less at short intervals)."""


def channel_options(config: settings.Settings) -> list[tuple[str, int]]:
    # gRPC's own reconnect backoff grows to 120 s by default: after a long outage the worker
    # would stay deaf that long once the scheduler is back (calls fail at once meanwhile).
    # Keep it under ours: a restarted scheduler must hear from the worker within an interval
    # or two (`backoff.reconnect_cap`).
    reconnect = min(MAX_RECONNECT_BACKOFF, backoff.reconnect_cap(config.heartbeat_interval))
    return [
        ("grpc.keepalive_time_ms", int(config.grpc_keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.grpc_keepalive_timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", int(config.grpc_keepalive_permit_without_streams)),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.min_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", int(reconnect * 1000)),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ]


RENEW_AT = 0.8
"""Fraction of a token's lifetime after which the worker registers again for a fresh one."""


def open_channel(config: settings.Settings) -> grpc.Channel:
    """A channel to the scheduler: TLS (mutual with a client certificate) when configured."""
    if not config.uses_tls:
        return grpc.insecure_channel(config.server_address, options=channel_options(config))

    def read(path: str) -> bytes | None:
        return Path(path).read_bytes() if path else None

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(config.tls_ca_file),
        private_key=read(config.tls_key_file),
        certificate_chain=read(config.tls_cert_file),
    )
    return grpc.secure_channel(config.server_address, credentials, options=channel_options(config))


def bootstrap_secret(config: settings.Settings) -> str:
    """The pool's bootstrap secret (the file is reread, so it can be rotated); empty: none."""
    if config.bootstrap_token_file:
        lines = Path(config.bootstrap_token_file).read_text().split()
        return lines[0] if lines else ""
    return config.bootstrap_token


class Credentials:
    """The worker token from the last registration and when to renew it; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0

    def metadata(self) -> tuple[tuple[str, str], ...]:
        with self._lock:
            token = self._token
        return (("authorization", f"Bearer {token}"),) if token else ()

    def accept(self, response: pb.RegisterWorkerResponse) -> None:
        """Keeps the token a registration handed out (none: authentication is off)."""
        now = self._clock()
        expires = response.token_expires_at.ToNanoseconds() / 1e9 if response.token else 0.0
        with self._lock:
            self._token = response.token
            self._renew_at = now + RENEW_AT * max(0.0, expires - now) if response.token else 0.0

    def forget(self) -> None:
        """The scheduler refused the token (UNAUTHENTICATED): register again for a new one."""
        with self._lock:
            self._token = ""

    def renewal_due(self) -> bool:
        with self._lock:
            return bool(self._token) and self._clock() >= self._renew_at


class LinkError(grpc.RpcError):  # type: ignore[misc]
    """A failure of the status stream seen on this side (no answer in time, stream ended)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class StatusStream:
    """One StreamTaskStatus call, used by one thread: `exchange` sends a report and returns its
    answer. A thread reads the answers, so that waiting for one can have a deadline."""

    def __init__(
        self,
        stub: pb_grpc.WorkerServiceStub,
        metadata: tuple[tuple[str, str], ...],
        timeout: float,
    ) -> None:
        self.metadata = metadata
        self._timeout = timeout
        self._requests: queue.SimpleQueue[pb.BatchUpdateTaskStatusRequest | None] = (
            queue.SimpleQueue()
        )
        self._answers: queue.SimpleQueue[pb.BatchUpdateTaskStatusResponse | grpc.RpcError] = (
            queue.SimpleQueue()
        )
        self._call = stub.StreamTaskStatus(iter(self._requests.get, None), metadata=metadata)
        threading.Thread(target=self._read, name="status-stream", daemon=True).start()

    def _read(self) -> None:
        try:
            for answer in self._call:
                self._answers.put(answer)
        except grpc.RpcError as error:
            self._answers.put(error)
        else:
            self._answers.put(
                LinkError(grpc.StatusCode.UNAVAILABLE, "the scheduler ended the status stream")
            )

    def exchange(
        self, request: pb.BatchUpdateTaskStatusRequest
    ) -> pb.BatchUpdateTaskStatusResponse:
        self._requests.put(request)
        try:
            answer = self._answers.get(timeout=self._timeout)
        except queue.Empty:
            raise LinkError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no answer on the status stream in {self._timeout:g} s",
            ) from None
        if isinstance(answer, grpc.RpcError):
            raise answer
        return answer

    def close(self) -> None:
        """Ends the stream: its last answers, if any are still coming, are not read."""
        self._requests.put(None)
        self._call.cancel()


class SchedulerClient:
    """Thin typed wrapper over the WorkerService stub; one channel, shared by all loops."""

    def __init__(self, config: settings.Settings, *, call_timeout: float = CALL_TIMEOUT) -> None:
        self._config = config
        self._timeout = call_timeout
        self._channel = open_channel(config)
        self._stub = pb_grpc.WorkerServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self.credentials = Credentials()
        self._status_stream: StatusStream | None = None
        self._stream_unsupported = False

    def register(self, request: pb.RegisterWorkerRequest) -> pb.RegisterWorkerResponse:
        """Registers with the current token while it is valid (a renewal: the pool's bootstrap
        secret may have been rotated since the worker started, and the token proves who it is),
        else with the bootstrap secret."""
        secret = bootstrap_secret(self._config)
        token = self.credentials.metadata()
        if token:
            try:
                response: pb.RegisterWorkerResponse = self._stub.RegisterWorker(
                    request, timeout=self._timeout, metadata=token
                )
            except grpc.RpcError as error:
                if not secret or code_of(error) is not grpc.StatusCode.UNAUTHENTICATED:
                    raise
                self.credentials.forget()  # expired or revoked: the secret it is
            else:
                self.credentials.accept(response)
                return response
        response = self._stub.RegisterWorker(
            request,
            timeout=self._timeout,
            metadata=(("authorization", f"Bearer {secret}"),) if secret else (),
        )
        self.credentials.accept(response)
        return response

    def poll(self, *, max_tasks: int, wait: float) -> grpc.Future:
        """Starts a long poll; the returned future can be cancelled (e.g. on shutdown)."""
        request = pb.PollForTaskRequest(
            worker_id=self._config.worker_id,
            max_tasks=max_tasks,
            wait=messages.duration(wait),
        )
        future: grpc.Future = self._stub.PollForTask.future(
            request, timeout=wait + POLL_MARGIN, metadata=self.credentials.metadata()
        )
        return future

    def batch_update(
        self, updates: list[pb.UpdateTaskStatusRequest], max_tasks: int = 0
    ) -> pb.BatchUpdateTaskStatusResponse:
        """Sends status updates (over the stream where the scheduler has it); the answer also
        hands out up to `max_tasks` new tasks. One thread at a time (the reporter's)."""
        request = pb.BatchUpdateTaskStatusRequest(
            worker_id=self._config.worker_id, updates=updates, max_tasks=max_tasks
        )
        if not self._stream_unsupported:
            metadata = self.credentials.metadata()
            stream = self._status_stream
            if stream is None or stream.metadata != metadata:  # new, or registered again
                if stream is not None:
                    stream.close()
                stream = self._status_stream = StatusStream(self._stub, metadata, self._timeout)
            try:
                return stream.exchange(request)
            except grpc.RpcError as error:
                stream.close()
                self._status_stream = None
                if code_of(error) is not grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._stream_unsupported = True
                _log.info("the scheduler lacks StreamTaskStatus: one call per status report")
        response: pb.BatchUpdateTaskStatusResponse = self._stub.BatchUpdateTaskStatus(
            request, timeout=self._timeout, metadata=self.credentials.metadata()
        )
        return response

    def update_task_status(self, update: pb.UpdateTaskStatusRequest) -> pb.UpdateTaskStatusResponse:
        response: pb.UpdateTaskStatusResponse = self._stub.UpdateTaskStatus(
            update, timeout=self._timeout, metadata=self.credentials.metadata()
        )
        return response

    def heartbeat(self, request: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
        response: pb.HeartbeatResponse = self._stub.SendHeartbeat(
            request, timeout=self._timeout, metadata=self.credentials.metadata()
        )
        return response

    def update_worker_status(
        self, status: pb.WorkerStatus, reason: str, *, timeout: float | None = None
    ) -> pb.UpdateWorkerStatusResponse:
        request = pb.UpdateWorkerStatusRequest(
            worker_id=self._config.worker_id, status=status, reason=reason
        )
        response: pb.UpdateWorkerStatusResponse = self._stub.UpdateWorkerStatus(
            request, timeout=timeout or self._timeout, metadata=self.credentials.metadata()
        )
        return response

    def append_output(self, request: pb.AppendTaskOutputRequest) -> pb.AppendTaskOutputResponse:
        response: pb.AppendTaskOutputResponse = self._stub.AppendTaskOutput(
            request, timeout=self._timeout, metadata=self.credentials.metadata()
        )
        return response

    def close(self) -> None:
        if self._status_stream is not None:
            self._status_stream.close()
            self._status_stream = None
        self._channel.close()
