"""The embedded default's local workers (`--workers N`) stay N: one killed is replaced, and
the task it was running runs again on the workers that are left or its replacement."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def server_with_workers(state_dir: Path) -> Iterator[harness.SchedulerProcess]:
    process = harness.SchedulerProcess(state_dir=state_dir, extra=("--workers=2",)).start()
    yield process
    process.stop()


def _pid_of(worker_id: str) -> int | None:
    """The pid of the local worker process with this id, by its command line."""
    flag = f"--worker-id={worker_id}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if argv[:1] == [b"vahana-worker"] and flag in argv:
            return int(entry)
    return None


def test_a_killed_local_worker_is_replaced_and_its_task_runs_again(
    server_with_workers: harness.SchedulerProcess,
) -> None:
    client = harness.Client(server_with_workers.address)
    try:
        first = wait_until(
            lambda: (lambda ws: ws if len(ws) == 2 else None)(client.list_workers()),
            timeout=30,
            message="two local workers registered",
        )
        [task_id] = client.submit(harness.submission("sleep 3; echo again", "survivor"))
        running = wait_until(
            lambda: (lambda t: t if t.status == pb.RUNNING else None)(client.get(task_id)),
            timeout=30,
            message="the task running",
        )
        victim = running.worker_id
        pid = _pid_of(victim)
        assert pid is not None, f"no process of {victim}"
        os.kill(pid, signal.SIGKILL)

        def replaced() -> list[str] | None:
            ids = sorted(w.worker_id for w in client.list_workers())
            return ids if len(ids) == 2 and victim not in ids else None

        ids = wait_until(replaced, timeout=30, message="a new worker in place of the killed one")
        assert set(ids) - {w.worker_id for w in first}, "one worker is new"
        done = wait_until(
            lambda: (lambda t: t if t.status in harness.FINAL else None)(client.get(task_id)),
            timeout=60,
            message="the task final",
        )
        assert done.status == pb.COMPLETED
        assert done.attempt == 2 and done.worker_id != victim
        assert "again" in done.output_tail
    finally:
        client.close()
