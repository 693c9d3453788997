"""Following a scheduler from the command line: `vahana get tasks --watch` prints each task's
transitions as they happen."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


class Lines:
    """A running `vahana` command whose output lines are read as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vahana.cli.main", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            self._queue.put(text.rstrip("\n"))

    def lines(self) -> list[str]:
        while not self._queue.empty():
            self.seen.append(self._queue.get_nowait())
        return self.seen

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture
def follow() -> Iterator[list[Lines]]:
    started: list[Lines] = []
    yield started
    for command in started:
        if command.process.poll() is None:
            command.stop()


def test_get_tasks_watch_prints_every_transition(
    client: harness.Client,
    scheduler: harness.SchedulerProcess,
    start_worker: WorkerFactory,
    follow: list[Lines],
) -> None:
    [before] = client.submit(harness.submission("true", "before"))
    start_worker("watch-worker")
    wait_until(lambda: client.status(before) == pb.COMPLETED, timeout=20, message="before")
    watching = Lines("get", "tasks", "-w", f"--server={scheduler.address}")
    follow.append(watching)
    wait_until(
        lambda: any("before" in line and "COMPLETED" in line for line in watching.lines()),
        timeout=20,
        message="the current list first",
    )
    [task] = client.submit(harness.submission("sleep 0.3", "watched"))

    def statuses() -> list[str]:
        return [line.split()[2] for line in watching.lines() if line.startswith(task)]

    wait_until(lambda: "COMPLETED" in statuses(), timeout=20, message="watched completes")
    seen = statuses()
    assert seen[0] == "PENDING" and "RUNNING" in seen and seen[-1] == "COMPLETED", seen
    assert watching.lines()[0].split()[:3] == ["ID", "NAME", "STATUS"]
    assert watching.stop() == 0
