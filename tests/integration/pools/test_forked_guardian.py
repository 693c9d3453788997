"""A local worker's guardian is forked by the zygote beside the worker (no interpreter of its
own to start): it is the zygote's child, named after its worker, and when the worker is killed
with -9 it ends what the worker's task left running."""

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
def server_with_a_worker(state_dir: Path) -> Iterator[harness.SchedulerProcess]:
    process = harness.SchedulerProcess(state_dir=state_dir, extra=("--workers=1",)).start()
    yield process
    process.stop()


def _processes() -> dict[int, tuple[int, str]]:
    """{pid: (ppid, command line)} of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        found[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), argv.decode().strip())
    return found


def test_a_killed_local_worker_s_forked_guardian_ends_its_task(
    server_with_a_worker: harness.SchedulerProcess, tmp_path: Path
) -> None:
    client = harness.Client(server_with_a_worker.address)
    pid_file = tmp_path / "task.pid"
    try:
        [task_id] = client.submit(
            harness.submission(f"echo $$ > {pid_file}; sleep 300; true", "long")
        )
        running = wait_until(
            lambda: (lambda t: t if t.status == pb.RUNNING else None)(client.get(task_id)),
            timeout=30,
            message="the task running",
        )
        task_pid = int(wait_until(lambda: pid_file.read_text().strip(), timeout=30))
        worker_id = running.worker_id
        everything = _processes()
        [worker_pid] = [
            pid
            for pid, (_, argv) in everything.items()
            if argv.startswith("vahana-worker ") and f"--worker-id={worker_id} " in argv + " "
        ]
        [guardian_pid] = [
            pid
            for pid, (_, argv) in everything.items()
            if argv == f"vahana-worker-guardian --worker-id={worker_id}"
        ]
        zygote_pid = everything[worker_pid][0]
        assert everything[guardian_pid][0] == zygote_pid, "the zygote's child, not the worker's"
        assert "vahana_worker.zygote" in everything[zygote_pid][1]
        log = server_with_a_worker.state_dir / "logs" / f"{worker_id}.log"
        assert f"guardian={guardian_pid}" in log.read_text()

        os.kill(worker_pid, signal.SIGKILL)
        wait_until(
            lambda: not harness.pid_alive(task_pid),
            timeout=30,
            message="the task's shell ended by the guardian",
        )
        wait_until(
            lambda: not harness.pid_alive(guardian_pid),
            timeout=30,
            message="the guardian gone once its work is done (reaped by the zygote)",
        )
        assert "worker gone; ended what its tasks left running" in log.read_text()
    finally:
        client.close()
