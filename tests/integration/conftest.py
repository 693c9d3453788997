"""Fixtures that start the real scheduler and real workers, and always stop them."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration import harness


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Short paths under /tmp: pytest's tmp_path can exceed the 107-byte Unix socket limit.
    with tempfile.TemporaryDirectory(prefix="vh-") as path:
        yield Path(path)


@pytest.fixture
def scheduler(state_dir: Path) -> Iterator[harness.SchedulerProcess]:
    process = harness.SchedulerProcess(state_dir=state_dir).start()
    yield process
    process.stop()


@pytest.fixture
def client(scheduler: harness.SchedulerProcess) -> Iterator[harness.Client]:
    connection = harness.Client(scheduler.address)
    yield connection
    connection.close()


WorkerFactory = Callable[..., harness.WorkerProcess]


@pytest.fixture
def start_worker(scheduler: harness.SchedulerProcess, state_dir: Path) -> Iterator[WorkerFactory]:
    started: list[harness.WorkerProcess] = []

    def start(worker_id: str, **options: object) -> harness.WorkerProcess:
        worker = harness.WorkerProcess(
            worker_id=worker_id,
            server_address=scheduler.address,
            working_dir=state_dir / "workers" / worker_id,
            heartbeat_interval=scheduler.heartbeat_interval,
            **options,  # type: ignore[arg-type]
        ).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.cleanup()
