"""`vahana run` reads its file on a thread while its event loop serves the starting workers."""

from __future__ import annotations

import asyncio
import threading

import pytest
from vahana.cli import run


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

    with pytest.raises(ValueError, match="line 3"):
        asyncio.run(run._on_a_thread(read))


def test_a_run_cancelled_while_reading_does_not_wait_for_the_reading() -> None:
    reading = threading.Event()
    finish = threading.Event()

    def read() -> list[str]:
        reading.set()
        finish.wait(timeout=30)
        return []

    async def main() -> None:
        task = asyncio.ensure_future(run._on_a_thread(read))
        await asyncio.get_running_loop().run_in_executor(None, reading.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    finish.set()  # the reading ends after its loop closed: nothing is raised
