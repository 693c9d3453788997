"""Real processes for integration tests: the scheduler (`vahana server`) and workers.

Both run as subprocesses so tests can kill -9 them, stop them and start them again, exactly
as a crash or an outage would.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import task_service_pb2_grpc, worker_pb2, worker_pb2_grpc

from tests.waiting import wait_until

FINAL = {worker_pb2.COMPLETED, worker_pb2.FAILED, worker_pb2.CANCELLED, worker_pb2.TIMED_OUT}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class SchedulerProcess:
    """`vahana server` with no local workers, on a fixed port so it can be restarted."""

    state_dir: Path
    port: int = dataclasses.field(default_factory=free_port)
    heartbeat_interval: float = 1.0
    missed_heartbeats: int = 3
    store_url: str | None = None
    """`--store-url`; None keeps the default, SQLite in the state dir (`db_path`)."""
    metrics_port: int = 0
    """`--metrics-port`: Prometheus /metrics on 127.0.0.1; 0 (the default here) turns it off."""
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    extra: tuple[str, ...] = ()
    """Further `vahana server` flags, e.g. --tls-cert-file=…"""
    credentials: grpc.ChannelCredentials | None = None
    """How the readiness check connects; None: plaintext."""
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    """Variables added to this process's environment, e.g. VAHANA_AUTH_*."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> SchedulerProcess:
        """Starts `vahana server` and waits until it serves."""
        self.launch()
        wait_until(self._serving, timeout=timeout, message=f"scheduler serving on {self.address}")
        return self

    def launch(self) -> SchedulerProcess:
        """Starts `vahana server` without waiting for it (it may stand by, or be refused)."""
        self.starts += 1
        log = open(self.state_dir / f"scheduler-{self.starts}.log", "wb")  # noqa: SIM115 (Popen keeps it)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vahana.cli.main",
                "server",
                f"--port={self.port}",
                f"--state-dir={self.state_dir}",
                "--workers=0",
                f"--heartbeat-interval={self.heartbeat_interval}",
                f"--missed-heartbeats={self.missed_heartbeats}",
                f"--metrics-port={self.metrics_port}",
                "--log-level=info",
                *([f"--store-url={self.store_url}"] if self.store_url else []),
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
        )
        log.close()
        return self

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"scheduler exited with {self.process.returncode}: {self.log_text()[-2000:]}"
            )
        return serving(self.address, self.credentials)

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        stop_process(self.process, grace=15)

    def log_text(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in sorted(self.state_dir.glob("scheduler-*.log"))
        )

    @property
    def db_path(self) -> Path:
        return self.state_dir / "vahana.db"


@dataclasses.dataclass
class WorkerProcess:
    """The real worker program, started as `python -m vahana_worker`."""

    worker_id: str
    server_address: str
    working_dir: Path
    heartbeat_interval: float = 1.0
    max_tasks: int = 1
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.working_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.working_dir / f"{self.worker_id}.log", "ab")  # noqa: SIM115 (Popen keeps it)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vahana_worker",
                f"--server-address={self.server_address}",
                f"--worker-id={self.worker_id}",
                f"--working-dir={self.working_dir}",
                f"--heartbeat-interval={self.heartbeat_interval}s",
                f"--max-tasks={self.max_tasks}",
                "--log-level=debug",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """kill -9 of the worker alone: its task's process group is left to die with the pipe."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        path = self.working_dir / f"{self.worker_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def open_channel(address: str, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, credentials)


class Client:
    """Typed access to both services of a scheduler."""

    def __init__(
        self,
        address: str,
        credentials: grpc.ChannelCredentials | None = None,
        token: str = "",
    ) -> None:
        self.channel = open_channel(address, credentials)
        if token:
            self.channel = grpc.intercept_channel(self.channel, BearerToken(token))
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self.channel)
        self.workers = worker_pb2_grpc.WorkerServiceStub(self.channel)

    def submit(self, *specs: tasks_pb.TaskSubmission) -> list[str]:
        return list(
            self.tasks.SubmitTasks(tasks_pb.SubmitTasksRequest(tasks=specs), timeout=10).task_ids
        )

    def get(self, task_id: str) -> tasks_pb.TaskInfo:
        return self.tasks.GetTask(tasks_pb.GetTaskRequest(id=task_id), timeout=5)

    def status(self, task_id: str) -> int:
        return self.get(task_id).status

    def list_workers(self) -> list[worker_pb2.WorkerInfo]:
        return list(self.workers.ListWorkers(worker_pb2.ListWorkersRequest(), timeout=5).workers)

    def close(self) -> None:
        self.channel.close()


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Sends `authorization: Bearer <token>` with every call."""

    def __init__(self, token: str) -> None:
        self.metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), self.metadata])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


def submission(command: str, name: str = "", **fields: object) -> tasks_pb.TaskSubmission:
    spec = worker_pb2.Task(command=command, name=name or "t")
    for key, value in fields.items():
        if key == "timeout_seconds":
            spec.timeout.FromNanoseconds(int(float(value) * 1e9))  # type: ignore[arg-type]
        elif key in ("cpu_cores", "memory_bytes", "gpus"):
            setattr(spec.requirements, key, value)
        elif key == "labels":
            spec.requirements.labels.update(value)  # type: ignore[arg-type]
        else:
            setattr(spec, key, value)
    return tasks_pb.TaskSubmission(spec=spec)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def processes_in(path: Path) -> list[int]:
    """Pids of the processes whose working directory is `path` or below it."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "cwd").startswith(str(path)):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def serving(address: str, credentials: grpc.ChannelCredentials | None = None) -> bool:
    """True once the gRPC health service at `address` answers SERVING."""
    with open_channel(address, credentials) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=0.5
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def stop_process(process: subprocess.Popen[bytes] | None, *, grace: float) -> None:
    """SIGTERM, then SIGKILL if it is not gone within `grace` seconds."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
