"""The bare-metal pool: workers started over ssh on listed hosts, one long-lived ssh each.

`ssh -p PORT -i KEY -o StrictHostKeyChecking=yes … user@host 'bash -s' < script`: the script
(pools.scripts) downloads and starts the worker under `timeout` walltime; the ssh process is
the worker's handle. Closing its stdin (or losing the connection) makes the remote script
stop the worker's own process group and remove its working dir. Workers are spread over the
hosts by free capacity (workersPerHost); a host whose ssh fails is backed off and reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from vahana.pools import base, scripts, ssh

log = logging.getLogger(__name__)

SSH_FAILED = 255
BACKOFF_SECONDS = (5.0, 10.0, 30.0, 60.0, 300.0)


@dataclasses.dataclass(frozen=True)
class Host:
    target: ssh.SshTarget
    slots: int = 1


@dataclasses.dataclass(frozen=True)
class BaremetalConfig:
    pool: str
    launch: scripts.Launch
    hosts: tuple[Host, ...]
    log_dir: Path


@dataclasses.dataclass
class _Remote:
    host: int
    process: subprocess.Popen[bytes]
    log_path: Path
    stopping: bool = False


@dataclasses.dataclass
class _HostHealth:
    failures: int = 0
    retry_at: float = 0.0
    error: str = ""


class BaremetalPool:
    def __init__(self, config: BaremetalConfig, *, clock: Callable[[], float] = time.monotonic):
        self.name = config.pool
        self.config = config
        self._clock = clock
        self._remotes: dict[str, _Remote] = {}
        self._health: dict[int, _HostHealth] = {}
        self._last_error = ""
        self.exit_listener: base.ExitListener | None = None
        self._stem = re.sub(r"[^A-Za-z0-9.-]+", "-", config.pool).strip("-") or "baremetal"

    def _free_host(self) -> int | None:
        """The usable host with the most free slots (ties: the first listed)."""
        now = self._clock()
        best: tuple[int, int] | None = None
        for index, host in enumerate(self.config.hosts):
            health = self._health.get(index)
            if health is not None and health.retry_at > now:
                continue
            used = sum(1 for r in self._remotes.values() if r.host == index)
            free = host.slots - used
            if free > 0 and (best is None or free > best[1]):
                best = (index, free)
        return None if best is None else best[0]

    def start_workers(self, count: int) -> list[str]:
        started = []
        for _ in range(count):
            index = self._free_host()
            if index is None:
                backing = [h.error for h in self._health.values() if h.retry_at > self._clock()]
                self._last_error = (
                    f"no host can take a worker: {'; '.join(backing)}"
                    if backing
                    else "every host is at workersPerHost"
                )
                raise base.PoolError(self._last_error)
            worker_id = f"{self._stem}-{secrets.token_hex(4)}"
            started.append(worker_id)
            self._remotes[worker_id] = self._spawn(worker_id, index)
        return started

    def _spawn(self, worker_id: str, index: int) -> _Remote:
        target = self.config.hosts[index].target
        launch = dataclasses.replace(self.config.launch, worker_id=worker_id)
        script = scripts.baremetal_script(launch).encode()
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.config.log_dir / f"{worker_id}.log"
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                target.command("bash -s"),
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stdin: IO[bytes] | None = process.stdin
        assert stdin is not None
        try:
            stdin.write(script)
            stdin.flush()  # and kept open: its end tells the remote script to stop
        except BrokenPipeError:
            pass  # ssh already failed; list_workers reports it
        log.info("started worker_id=%s host=%s pool=%s", worker_id, target.label, self.name)
        base.watch_exit(
            process, worker_id, lambda: self.exit_listener,
            lambda code: f"its ssh session to {target.label} ended (exit {code})",
        )  # fmt: skip
        return _Remote(index, process, log_path)

    def stop_workers(self, worker_ids: Sequence[str]) -> None:
        """Hangs up: the remote script sees EOF and stops the worker (it drains first)."""
        for worker_id in worker_ids:
            remote = self._remotes.get(worker_id)
            if remote is None:
                continue
            if remote.process.poll() is None:
                remote.stopping = True
                if remote.process.stdin is not None and not remote.process.stdin.closed:
                    with contextlib.suppress(BrokenPipeError):
                        remote.process.stdin.close()
            else:
                del self._remotes[worker_id]

    def list_workers(self) -> list[base.PoolWorker]:
        workers = []
        for worker_id, remote in self._remotes.items():
            code = remote.process.poll()
            label = self.config.hosts[remote.host].target.label
            if code is None:
                state = base.PoolWorkerState.STOPPING if remote.stopping else None
                workers.append(
                    base.PoolWorker(worker_id, state or base.PoolWorkerState.RUNNING, label)
                )
            elif code == 0 or remote.stopping:
                workers.append(base.PoolWorker(worker_id, base.PoolWorkerState.EXITED, label, code))
            else:
                detail = f"{label}: {base.log_tail(remote.log_path) or f'exit {code}'}"
                if code == SSH_FAILED:
                    self._back_off(remote.host, detail)
                self._last_error = detail
                workers.append(
                    base.PoolWorker(worker_id, base.PoolWorkerState.FAILED, detail, code)
                )
        return workers

    def _back_off(self, index: int, error: str) -> None:
        health = self._health.setdefault(index, _HostHealth())
        if health.error == error and health.retry_at > self._clock():
            return  # already counted
        delay = BACKOFF_SECONDS[min(health.failures, len(BACKOFF_SECONDS) - 1)]
        health.failures += 1
        health.retry_at = self._clock() + delay
        health.error = error
        log.warning("pool=%s host backing off %.0fs: %s", self.name, delay, error)

    def status(self) -> base.PoolStatus:
        return base.summarize(self.name, self.list_workers(), self._last_error)

    def close(self, timeout: float = 30.0) -> None:
        """Hangs up on every worker, waits for the remote scripts to clean up, then kills ssh."""
        self.stop_workers(list(self._remotes))
        deadline = time.monotonic() + timeout
        for worker_id, remote in list(self._remotes.items()):
            try:
                remote.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("ssh of worker_id=%s did not end in time, killing it", worker_id)
                remote.process.kill()
                remote.process.wait()
        self._remotes.clear()


def factory() -> base.AdapterFactory:
    """Adapter factory for WorkerPools of type baremetal."""
    return base.reconfiguring_factory(BaremetalPool, pool_config)


def pool_config(context: base.PoolContext) -> BaremetalConfig:
    """The adapter's view of a WorkerPool; ValueError says what is wrong with it."""
    section = context.spec.get("baremetal") or {}
    if section.get("sshKeySecret") and not section.get("sshKeyFile"):
        raise ValueError(
            "spec.baremetal.sshKeySecret: Secrets are read by the operator in a cluster; "
            "without one, give spec.baremetal.sshKeyFile"
        )
    hosts = tuple(
        Host(
            ssh.SshTarget(
                host=ssh.check_host(entry["host"]),
                port=int(entry.get("port", 22)),
                user=entry.get("user", ""),
                key_file=section.get("sshKeyFile", ""),
                known_hosts_file=section.get("knownHostsFile", ""),
            ),
            slots=int(entry.get("workersPerHost", 1)),
        )
        for entry in section.get("hosts") or ()
    )
    if not hosts:
        raise ValueError("spec.baremetal.hosts: give at least one host")
    working_dir = section.get("workingDir") or "/tmp/vahana-workers"
    return BaremetalConfig(
        pool=context.key,
        launch=scripts.launch_template(context, working_dir),
        hosts=hosts,
        log_dir=context.state_dir / "logs",
    )
