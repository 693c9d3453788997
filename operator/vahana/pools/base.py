"""The interface every pool adapter offers, and the records it reports with."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Protocol


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
