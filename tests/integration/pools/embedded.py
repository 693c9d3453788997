"""The embedded scheduler with --pool-file pools, run in a thread of the test process.

`EmbeddedScheduler` is `vahana server --pool-file F` without the subprocess: the same
`SchedulerProcess`, its pools and their adapters, so tests can look at the adapters' state
(SLURM job ids, ssh processes) and the scheduler's workers directly. Without a pool file
(`pool_yaml=""`) it is `vahana server` with its default local pool (`local_pool.workers`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import grpc
from vahana.app import service
from vahana.app import settings as settings_module
from vahana.core import models
from vahana.manifests import pools as pool_manifests

from tests.integration import harness

T = TypeVar("T")


class EmbeddedScheduler:
    def __init__(
        self,
        state_dir: Path,
        pool_yaml: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        **settings: Any,
    ) -> None:
        self.state_dir = state_dir
        self._credentials = credentials
        self.manifests = (
            pool_manifests.parse_pool_documents(pool_yaml, source="test") if pool_yaml else []
        )
        overrides = {
            "server.port": 0,
            "store.state_dir": str(state_dir),
            "local_pool.workers": 0,
            "scheduler.heartbeat_interval_seconds": 1.0,
            "scheduler.missed_heartbeats": 3,
            "pools.resync_seconds": 0.5,
            **settings,
        }
        self.settings = settings_module.load(overrides)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.process: service.SchedulerProcess | None = None
        self.client: harness.Client | None = None

    def __enter__(self) -> EmbeddedScheduler:
        self._thread.start()
        self.process = self.call(self._start())
        self.client = harness.Client(self.process.address, self._credentials)
        return self

    async def _start(self) -> service.SchedulerProcess:
        process = service.SchedulerProcess(self.settings, pools=self.manifests)
        await process.start()
        return process

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def __exit__(self, *_: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.process is not None:
            self.call(self.process.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def pools(self) -> Any:
        assert self.process is not None and self.process.pools is not None
        return self.process.pools

    def adapter(self, key: str) -> Any:
        return self.pools.manager._pools[key].adapter

    def status(self, key: str) -> dict[str, Any]:
        return dict(self.pools.statuses.get(key, {}))

    def workers(self, pool: str = "") -> list[Any]:
        assert self.process is not None
        return self.process.scheduler.list_workers(pool=pool)

    def attempts(self, task_id: str) -> list[models.AttemptRecord]:
        """The task's attempts as the scheduler's store has them."""
        assert self.process is not None
        scheduler = self.process.scheduler

        async def read() -> list[models.AttemptRecord]:
            return scheduler.list_attempts(task_id)

        return self.call(read())

    def watch(self) -> TaskEvents:
        """Records every task change the scheduler publishes from now on."""
        assert self.process is not None
        events = TaskEvents()
        self.process.scheduler.add_listener(events)
        return events


@dataclasses.dataclass(frozen=True)
class TaskEvent:
    at: float
    """time.monotonic() when the scheduler published it (after its commit)."""
    task_id: str
    attempt: int
    phase: models.TaskPhase
    worker_id: str


class TaskEvents:
    """A task listener: what the scheduler published, when (called on its loop's thread)."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []

    def __call__(self, task: models.TaskRecord) -> None:
        self.events.append(
            TaskEvent(time.monotonic(), task.id, task.attempt, task.phase, task.worker_id)
        )

    def first(self, task_id: str, *, attempt: int) -> TaskEvent | None:
        """The first event of the task at that attempt (its dispatch, for attempts > 0)."""
        return next(
            (e for e in list(self.events) if e.task_id == task_id and e.attempt == attempt), None
        )
