"""The local pool: workers as processes of this machine, the embedded default.

Each worker is the real worker program (`vahana_worker.cli`), talking to the scheduler over
real gRPC on loopback, exactly as a remote one would. The pool's zygote (`forking`) forks
them, so that a new worker costs a fork rather than an interpreter's start-up and imports.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from vahana.pools import base, forking

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LocalPoolConfig:
    server_address: str
    working_dir: Path
    log_dir: Path
    name: str = "local"
    tasks_per_worker: int = 1
    heartbeat_interval_seconds: float = 30.0
    task_timeout_seconds: float = 3600.0
    python: str = sys.executable
    """The interpreter of the zygote that forks the workers (one with vahana_worker)."""
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    """Variables for the workers on top of the scheduler's own (the pool's storage settings)."""


class LocalPool:
    def __init__(self, config: LocalPoolConfig) -> None:
        self.name = config.name
        self._config = config
        self._processes: dict[str, forking.ForkedProcess] = {}
        self._zygote: forking.Zygote | None = None
        self._counter = 0
        self._last_error = ""
        self.exit_listener: base.ExitListener | None = None

    def start_workers(self, count: int) -> list[str]:
        started = []
        for _ in range(count):
            self._counter += 1
            stem = re.sub(r"[^A-Za-z0-9.-]+", "-", self.name).strip("-") or "local"
            worker_id = f"{stem}-{os.getpid()}-{self._counter}"
            try:
                self._processes[worker_id] = self._spawn(worker_id)
            except OSError as error:
                self._last_error = f"starting worker {worker_id}: {error}"
                raise base.PoolError(self._last_error) from error
            started.append(worker_id)
        return started

    def _spawn(self, worker_id: str) -> forking.ForkedProcess:
        config = self._config
        config.log_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            f"--server-address={config.server_address}",
            f"--worker-id={worker_id}",
            f"--working-dir={config.working_dir / worker_id}",
            f"--heartbeat-interval={config.heartbeat_interval_seconds:g}s",
            f"--task-timeout={config.task_timeout_seconds:g}s",
            f"--max-tasks={config.tasks_per_worker}",
            f"--pool={self.name}",
            # The worker gets SIGTERM (and drains) when its parent, the zygote, ends; the
            # zygote ends when this process does.
            "--exit-with-parent",
            *config.extra_args,
        ]
        if self._zygote is None or not self._zygote.alive():
            if self._zygote is not None:
                self._zygote.close()  # it died, and its workers with it: a new one
            self._zygote = forking.take(config.python)
        process = self._zygote.fork(
            argv,
            env={**os.environ, **config.env},
            log_path=config.log_dir / f"{worker_id}.log",
            cwd=os.getcwd(),
        )
        log.info("started worker_id=%s pid=%d pool=%s", worker_id, process.pid, self.name)
        base.watch_exit(
            process,
            worker_id,
            lambda: self.exit_listener,
            lambda code: _exit_reason(process.pid, code, config.log_dir / f"{worker_id}.log"),
        )
        return process

    def stop_workers(self, worker_ids: Sequence[str]) -> None:
        """SIGTERM to running workers (they drain); exited ones are forgotten."""
        for worker_id in worker_ids:
            process = self._processes.get(worker_id)
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            else:
                del self._processes[worker_id]

    def reconfigure(self, config: LocalPoolConfig) -> None:
        self._config = config

    def pid_of(self, worker_id: str) -> int:
        return self._processes[worker_id].pid

    def list_workers(self) -> list[base.PoolWorker]:
        workers = []
        for worker_id, process in self._processes.items():
            code = process.poll()
            if code is None:
                state = base.PoolWorkerState.RUNNING
            elif code == 0:
                state = base.PoolWorkerState.EXITED
            else:
                state = base.PoolWorkerState.FAILED
                self._last_error = f"worker {worker_id} exited with {code}"
            workers.append(base.PoolWorker(worker_id, state, f"pid {process.pid}", code))
        return workers

    def status(self) -> base.PoolStatus:
        return base.summarize(self.name, self.list_workers(), self._last_error)

    def kill_workers(self) -> None:
        """SIGKILL to every running worker, without waiting (the process is about to end;
        each worker's guardian ends its tasks' processes)."""
        for process in self._processes.values():
            process.kill()

    def close(self, timeout: float = 30.0) -> None:
        self.stop_workers(list(self._processes))
        deadline = time.monotonic() + timeout
        for worker_id, process in self._processes.items():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker did not stop in time, killing worker_id=%s", worker_id)
                process.kill()
                process.wait(timeout=10)
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None


def _exit_reason(pid: int, code: int, log_path: Path | None = None) -> str:
    """Why a worker's process ended; for a failure, the last line of its log (where a worker
    that cannot start says why: a bad flag or setting, a working directory it cannot use)."""
    if code < 0:
        return f"its process (pid {pid}) was killed by signal {-code}"
    reason = f"its process (pid {pid}) exited with {code}"
    last = base.log_tail(log_path) if code > 0 and log_path is not None else ""
    return f"{reason}; its log ({log_path}) ends: {last}" if last else reason


def from_pool(context: base.PoolContext, previous: base.WorkerPool | None) -> LocalPool:
    """The adapter of a WorkerPool of type local: workers as processes of the scheduler."""
    from vahana.pools import stores  # spec.storage: not needed by the default local workers

    config = LocalPoolConfig(
        server_address=context.server_address,
        working_dir=context.state_dir / "workers",
        log_dir=context.state_dir / "logs",
        name=context.key,
        tasks_per_worker=int(context.spec["tasksPerWorker"]),
        heartbeat_interval_seconds=context.heartbeat_interval_seconds,
        extra_args=(f"--cpu-cores={context.capacity.cpu_cores:g}",)
        + tuple(f"--label={k}={v}" for k, v in sorted(context.capacity.labels.items()))
        + context.worker_args,
        env=stores.worker_env(context.spec),
    )
    if isinstance(previous, LocalPool):
        previous.reconfigure(config)  # running workers stay; new ones get the new settings
        return previous
    return LocalPool(config)
