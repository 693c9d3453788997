"""`vahana run` reads its file on a thread while the scheduler starts and its event loop serves
the starting workers."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import pytest
from builders import make_task
from rich.console import Console
from vahana.app import service
from vahana.app import settings as settings_module
from vahana.cli import run
from vahana.core import models


def test_the_loop_runs_while_the_file_is_read() -> None:
    served = threading.Event()

    def read() -> list[str]:
        # Blocks until the loop has done something meanwhile (a worker's registration, say).
        assert served.wait(timeout=30), "the event loop was blocked while reading"
        return ["read"]

    async def main() -> list[str]:
        asyncio.get_running_loop().call_soon(served.set)
        return await run._on_a_thread(read)

    assert asyncio.run(main()) == ["read"]


def test_what_the_reading_raises_is_raised_in_the_run() -> None:
    def read() -> list[str]:
        raise ValueError("tasks.yaml: line 3: bad")

    async def main() -> list[str]:
        return await run._on_a_thread(read)

    with pytest.raises(ValueError, match="line 3"):
        asyncio.run(main())


def test_a_run_cancelled_while_reading_does_not_wait_for_the_reading() -> None:
    reading = threading.Event()
    finish = threading.Event()

    def read() -> list[str]:
        reading.set()
        finish.wait(timeout=30)
        return []

    async def main() -> None:
        task = run._on_a_thread(read)
        await asyncio.get_running_loop().run_in_executor(None, reading.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    finish.set()  # the reading ends after its loop closed: nothing is raised


def test_the_file_is_read_while_the_scheduler_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reading begins before the start (which waits for the zygote to fork the workers)
    has ended: a start that waits for the reading to begin finishes."""
    reading = threading.Event()
    start = service.SchedulerProcess.start

    async def start_once_reading(self: service.SchedulerProcess) -> None:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, reading.wait, 30), "not read during the start"
        await start(self)

    def read() -> list[models.Submission]:
        reading.set()
        return [make_task("a").submission()]

    monkeypatch.setattr(service.SchedulerProcess, "start", start_once_reading)
    settings = settings_module.load(
        {
            "store.state_dir": str(tmp_path),
            "server.port": 0,
            "metrics.port": 0,
            "local_pool.workers": 0,
        },
        {},
    )
    console = Console(file=io.StringIO())

    async def main() -> list[str]:
        done = asyncio.ensure_future(run.run_tasks(read, settings, console))
        # No worker: the task waits; the run is cancelled once it is submitted.
        while not done.done() and "submitted 1 task" not in console.file.getvalue():
            await asyncio.sleep(0.01)
        done.cancel()
        with pytest.raises(asyncio.CancelledError):
            await done
        return [line for line in console.file.getvalue().splitlines() if "submitted" in line]

    assert asyncio.run(asyncio.wait_for(main(), 60)) == ["submitted 1 task(s) to 0 local worker(s)"]
