"""Following a scheduler from the command line: `vahana get tasks --watch` prints each task's
transitions as they happen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


class Lines:
    """A running `vahana` command whose output is read as it comes: its whole lines, and the
    bytes as written (a line not ended yet included)."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vahana.cli.main", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )
        self._lock = threading.Lock()
        self._raw = b""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := os.read(self.process.stdout.fileno(), 65536):
            with self._lock:
                self._raw += chunk

    def raw(self) -> bytes:
        with self._lock:
            return self._raw

    def lines(self) -> list[str]:
        return [line.decode() for line in self.raw().split(b"\n")[:-1]]

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
    assert watching.stop() == 130  # ended by Ctrl-C, as a shell reports it


def test_logs_prints_a_finished_task_s_whole_output(
    client: harness.Client, scheduler: harness.SchedulerProcess, start_worker: WorkerFactory
) -> None:
    """2.2 MB of output, far past the 64 KiB tail the status keeps: `logs` has every byte."""
    start_worker("logs-worker")
    [task] = client.submit(harness.submission("seq 1 300000; echo err >&2", "chatty"))
    wait_until(lambda: client.status(task) == pb.COMPLETED, timeout=30, message="chatty ends")
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "vahana.cli.main",
            "logs",
            "chatty",
            f"--server={scheduler.address}",
        ],
        capture_output=True,
        check=True,
    ).stdout
    expected = "".join(f"{i}\n" for i in range(1, 300001)).encode() + b"err\n"
    assert len(printed) == len(expected) and printed == expected
    assert len(client.get(task).output_tail) < len(expected)


def test_logs_follow_shows_each_line_of_a_running_task_within_a_second(
    client: harness.Client,
    scheduler: harness.SchedulerProcess,
    start_worker: WorkerFactory,
    follow: list[Lines],
    tmp_path: Path,
) -> None:
    """The task prints a line with the time every 0.3 s until told to stop; once `logs -f`
    shows the first, each next one reaches it less than 1 s after it was written."""
    start_worker("follow-worker")
    stop = tmp_path / "stop"
    command = (
        f'i=0; until [ -e {stop} ]; do i=$((i+1)); echo "tick $i $(date +%s.%N)"; sleep 0.3; done'
    )
    [task] = client.submit(harness.submission(command, "ticker"))
    wait_until(lambda: client.status(task) == pb.RUNNING, timeout=20, message="ticker runs")
    following = Lines("logs", "-f", "ticker", f"--server={scheduler.address}")
    follow.append(following)
    delays: dict[int, float] = {}
    connected: list[float] = []

    def note() -> bool:
        now = time.time()
        for line in following.lines():
            parts = line.split()
            if len(parts) != 3 or parts[0] != "tick":
                continue
            number, written = int(parts[1]), float(parts[2])
            if not connected:
                connected.append(now)  # what was written before `logs -f` was up comes at once
            elif written > connected[0] and number not in delays:
                delays[number] = now - written
        return len(delays) >= 6

    wait_until(note, timeout=60, message="6 timed ticks", interval=0.01)
    stop.touch()
    assert following.process.wait(timeout=20) == 0, "-f ends when the task ends"
    assert client.status(task) == pb.COMPLETED
    assert max(delays.values()) < 1.0, delays
    print(f"logs -f delays (s): {', '.join(f'{d:.3f}' for d in sorted(delays.values()))}")


def test_logs_follow_ended_by_ctrl_c_completes_the_last_line_and_exits_130(
    client: harness.Client,
    scheduler: harness.SchedulerProcess,
    start_worker: WorkerFactory,
    follow: list[Lines],
) -> None:
    start_worker("interrupted-worker")
    [task] = client.submit(harness.submission("echo first; printf partial; sleep 60", "talker"))
    wait_until(lambda: client.status(task) == pb.RUNNING, timeout=20, message="talker runs")
    following = Lines("logs", "-f", "talker", f"--server={scheduler.address}")
    follow.append(following)
    wait_until(lambda: following.raw() == b"first\npartial", timeout=20, message="a line not ended")
    assert following.stop() == 130  # interrupted, as a shell reports it
    wait_until(
        lambda: following.raw() == b"first\npartial\n",
        timeout=10,
        message="the cut line ended by logs -f as it stopped",
    )
