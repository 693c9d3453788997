"""The interface every pool adapter offers, and the records it reports with."""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from vahana.core import models, printable

log = logging.getLogger(__name__)

ExitListener = Callable[[str, str], None]
"""`listener(worker_id, why)`: the worker's process (or its ssh) has ended. Called on a
thread of the adapter's, at once, so the scheduler need not wait for missed heartbeats."""


class Waitable(Protocol):
    """A started process as far as `watch_exit` needs it (`subprocess.Popen` is one)."""

    def wait(self) -> int: ...


def watch_exit(
    process: Waitable,
    worker_id: str,
    listener: Callable[[], ExitListener | None],
    describe: Callable[[int], str],
) -> None:
    """Tells the adapter's exit listener (if it has one by then) when `process` ends."""

    def wait() -> None:
        code = process.wait()
        told = listener()
        if told is None:
            return
        try:
            told(worker_id, describe(code))
        except Exception:  # the listener's failure must not go unnoticed, nor kill the pool
            log.exception("exit listener failed worker_id=%s", worker_id)

    threading.Thread(target=wait, name=f"exit-{worker_id}", daemon=True).start()


class PoolError(RuntimeError):
    """A pool operation failed; the message is short and says what the pool refused and why."""


class PoolWorkerState(enum.StrEnum):
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    EXITED = "Exited"
    FAILED = "Failed"


@dataclasses.dataclass(frozen=True)
class PoolWorker:
    """A worker as its pool sees it (a process, a Job, a SLURM job), not as the scheduler does."""

    worker_id: str
    state: PoolWorkerState
    detail: str = ""
    """Where it runs: a pid, a Job name, a SLURM job id."""
    exit_code: int | None = None


@dataclasses.dataclass(frozen=True)
class PoolStatus:
    name: str
    starting: int
    running: int
    failed: int
    last_error: str = ""


class WorkerPool(Protocol):
    name: str

    def start_workers(self, count: int) -> list[str]:
        """Starts `count` workers; returns their ids."""

    def stop_workers(self, worker_ids: Sequence[str]) -> None:
        """Stops the workers (they drain first: SIGTERM or its equivalent)."""

    def list_workers(self) -> list[PoolWorker]: ...

    def status(self) -> PoolStatus: ...

    def close(self, timeout: float = 30.0) -> None:
        """Stops every worker of the pool and waits for them, up to `timeout` seconds."""


class WatchesExits(Protocol):
    """An adapter whose workers are processes of this scheduler (local workers, the ssh of
    bare-metal ones): it tells `exit_listener` the moment one ends."""

    exit_listener: ExitListener | None


@dataclasses.dataclass(frozen=True)
class PoolContext:
    """Everything an adapter factory needs to build the adapter of one WorkerPool."""

    namespace: str
    name: str
    uid: str
    key: str
    """The pool as the scheduler and its workers know it: `<namespace>/<name>`."""
    spec: Mapping[str, Any]
    """The WorkerPool's spec, as validated by its CRD schema."""
    capacity: models.Resources
    """What one worker of the pool offers (resources and labels)."""
    server_address: str
    """How the pool's workers reach the scheduler."""
    heartbeat_interval_seconds: float
    state_dir: Path
    """A directory of the scheduler process for this pool's files (logs, scripts)."""
    walltime_seconds: float | None = None
    """Longest life of one worker (spec.walltime); None: unlimited."""
    drain_timeout_seconds: float = 30.0
    worker_args: tuple[str, ...] = ()
    """Extra flags for workers the scheduler starts itself (local pools): authentication,
    output directory."""
    """How long a stopping worker lets its tasks finish (spec.drainTimeout, the worker's
    --drain-timeout); a pilot with a walltime starts draining this long (+10 s) before its end."""
    remote_server_address: str = ""
    """How workers outside the scheduler's network (slurm and baremetal pilots) reach it;
    empty: server_address (e.g. an in-cluster operator: a LoadBalancer or NodePort address)."""
    worker_binary_url: str = ""
    """Where remote workers download the worker zipapp (WORKER_BINARY_URL); empty: not served."""
    worker_binary_sha256: str = ""
    """Hex sha256 of that zipapp; scripts refuse to run a download that does not match."""
    bootstrap_secret: str = dataclasses.field(default="", repr=False)
    """The secret this pool's remote workers register with (tokens.pool_secret); empty when
    the scheduler requires none."""
    tls_required: bool = False
    """The scheduler serves mutual TLS: remote workers need their TLS files (spec.<type>.tls)."""


AdapterFactory = Callable[[PoolContext, "WorkerPool | None"], "WorkerPool"]
"""Builds a pool's adapter from its context; may reuse the previous adapter on a spec change."""


def log_tail(path: Path, most: int = 300) -> str:
    """The last non-empty line of a worker's log (where a worker that could not start says
    why), at most `most` characters and safe to show on a terminal; "" if there is none."""
    try:
        with open(path, "rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            log_file.seek(max(0, log_file.tell() - 4096))  # its end is enough
            tail = log_file.read()
    except OSError:
        return ""
    lines = [line.strip() for line in tail.decode(errors="replace").splitlines() if line.strip()]
    return printable.printable(lines[-1], most) if lines else ""


def summarize(name: str, workers: Sequence[PoolWorker], last_error: str) -> PoolStatus:
    """A pool's status from the states of its workers."""

    def count(state: PoolWorkerState) -> int:
        return sum(1 for worker in workers if worker.state == state)

    return PoolStatus(
        name,
        starting=count(PoolWorkerState.STARTING),
        running=count(PoolWorkerState.RUNNING),
        failed=count(PoolWorkerState.FAILED),
        last_error=last_error,
    )


def reconfiguring_factory(
    adapter: Callable[[Any], WorkerPool], configure: Callable[[PoolContext], Any]
) -> AdapterFactory:
    """A factory for adapters built from one config object: on a spec change the running
    adapter (and its workers) is kept and given the new config."""

    def build(context: PoolContext, previous: WorkerPool | None) -> WorkerPool:
        config = configure(context)
        if previous is not None and isinstance(previous, cast(type, adapter)):
            setattr(previous, "config", config)  # noqa: B010 (no such attribute on the protocol)
            return previous
        return adapter(config)

    return build


def lazy_factory(load: Callable[[], AdapterFactory]) -> AdapterFactory:
    """A factory that calls `load` (which imports an adapter's module and returns its factory)
    when it builds its first adapter: a scheduler loads only the adapters its pools use."""
    loaded = functools.cache(load)

    def build(context: PoolContext, previous: WorkerPool | None) -> WorkerPool:
        return loaded()(context, previous)

    return build
