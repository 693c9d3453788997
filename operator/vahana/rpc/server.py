"""The gRPC server: both services, health, reflection, and the health-monitor loop.

Health (`grpc.health.v1`): SERVING while the scheduler's store writes; NOT_SERVING, for the
server and both services, from the first write that fails until one succeeds again — a call's
commit, or the tiny write the health monitor tries on each of its rounds meanwhile. No restart
is needed either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vahana.proto import task_service_pb2, worker_pb2
from vahana.rpc import auth, decoding, task_service, wakeups, worker_service
from vahana.rpc import outputs as output_feed
from vahana.scheduling import scheduler
from vahana.store import base, outputs

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
    task_service_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name,
)


class PortInUse(OSError):
    """The gRPC port could not be bound: the message says why and what to do."""


class SchedulerServer:
    """Serves a scheduler on one port and runs its periodic health checks."""

    def __init__(
        self,
        sched: scheduler.Scheduler,
        *,
        address: str,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        credentials: grpc.ServerCredentials | None = None,
        guard: auth.Guard | None = None,
        output_store: outputs.OutputStore | None = None,
    ) -> None:
        """`credentials`: TLS (rpc/tls.py), None for plaintext; `guard`: token checks;
        `output_store`: where tasks' streamed output is kept (None: only their tails)."""
        self.scheduler = sched
        self._address = address
        self._credentials = credentials
        self.wakeups = wakeups.Wakeups(queued=lambda: sched.queue_length)
        """How waiting polls are woken (its counts are read by tests and the benchmark)."""
        sched.set_waker(self.wakeups.wake)
        self._server = grpc.aio.server(
            interceptors=list(interceptors),
            options=[
                # gRPC shares a port between processes by default: a second scheduler would
                # split the clients and workers with the first. Bind it alone or fail.
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        feed = output_feed.Feed()
        decoding.add_service(
            self._server,
            worker_service.WorkerService(
                sched,
                self.wakeups,
                tokens=guard.tokens if guard else None,
                output_store=output_store,
                feed=feed,
            ),
            worker_pb2.DESCRIPTOR.services_by_name["WorkerService"],
            guard,
        )
        decoding.add_service(
            self._server,
            task_service.TaskService(sched, output_store=output_store, feed=feed),
            task_service_pb2.DESCRIPTOR.services_by_name["TaskService"],
            guard,
        )
        self._health = (
            health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self.port = 0
        self._monitor: asyncio.Task[None] | None = None
        self._serving = False
        self._health_updates: set[asyncio.Task[None]] = set()
        sched.add_store_health_listener(self._on_store_health)

    async def start(self) -> int:
        """Binds the port and serves; `PortInUse` if the address cannot be had."""
        # Tried first with a plain socket: gRPC would log its own failure to bind (an
        # internal `E… add_port.cc` line) before the message that says what to do.
        problem = _bind_problem(self._address) if not self._address.endswith(":0") else None
        if problem is not None:
            raise PortInUse(problem)
        try:
            if self._credentials is None:
                self.port = self._server.add_insecure_port(self._address)
            else:
                self.port = self._server.add_secure_port(self._address, self._credentials)
        except RuntimeError:  # grpcio ≥ 1.5x raises instead of returning 0
            self.port = 0
        if self.port == 0:
            raise PortInUse(
                _bind_problem(self._address)
                or f"cannot listen on {self._address} — check --host and --port"
            )
        await self._server.start()
        self._serving = True
        await self._publish_health()
        self._monitor = asyncio.create_task(self._monitor_health(), name="health-monitor")
        log.info(
            "serving address=%s port=%d tls=%s",
            self._address,
            self.port,
            "mutual" if self._credentials else "off",
        )
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        self._serving = False
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        await self._server.stop(grace)

    async def wait(self) -> None:
        await self._server.wait_for_termination()

    async def _monitor_health(self) -> None:
        interval = self.scheduler.settings.heartbeat_interval_seconds
        tick = max(0.05, min(1.0, interval / 4))
        while True:
            try:
                if not self.scheduler.store_healthy:
                    await self.scheduler.probe_store()
                await self.scheduler.check_health_async()
            except base.StoreUnavailable as error:  # the store said why, once: it is tried again
                log.debug("health check not saved, tried again in %.2fs: %s", tick, error)
            except Exception:
                log.exception("health check failed")
            await asyncio.sleep(tick)

    def _on_store_health(self, _healthy: bool, _reason: str) -> None:
        if self._serving:
            # Called on the scheduler's thread, which runs this server's event loop.
            task = asyncio.get_running_loop().create_task(self._publish_health())
            self._health_updates.add(task)
            task.add_done_callback(self._health_updates.discard)

    async def _publish_health(self) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.scheduler.store_healthy
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICE_NAMES):
            await _set_health(self._health, name, status)


def _bind_problem(address: str) -> str | None:
    """Why `address` (host:port) cannot be bound, found by trying it with a plain socket as
    gRPC binds (SO_REUSEADDR: a port left in TIME_WAIT by a scheduler just stopped is free);
    None if it can be."""
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        port = int(port_text)
        family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(where)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return (
                f"port {port_text} is in use on {host}: another scheduler (or another program) "
                "listens there — stop it, or give this one another --port"
            )
        return f"cannot listen on {address}: {error.strerror or error} — check --host and --port"
    except ValueError:
        return f"cannot listen on {address}: {port_text!r} is not a port — check --port"
    return None


async def _set_health(servicer: object, name: str, status: int) -> None:
    result = servicer.set(name, status)  # type: ignore[attr-defined]
    if asyncio.iscoroutine(result):
        await result
