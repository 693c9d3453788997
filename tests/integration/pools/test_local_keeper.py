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


def _guardian_of(worker_id: str) -> tuple[int, int] | None:
    """(pid, parent pid) of the guardian the zygote forked beside this worker."""
    title = f"vahana-worker-guardian --worker-id={worker_id}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/cmdline").read_bytes().rstrip(b"\0") != title:
                continue
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        return int(entry), int(stat.rsplit(")", 1)[1].split()[1])
    return None


def test_a_killed_local_worker_s_forked_guardian_ends_its_task(
    server_with_workers: harness.SchedulerProcess, tmp_path: Path
) -> None:
    """The guardian is forked by the zygote beside its worker (no interpreter of its own to
    start): the zygote's child, named after its worker; when the worker is killed with -9 it
    ends what the worker's task left running."""
    client = harness.Client(server_with_workers.address)
    pid_file = tmp_path / "task.pid"
    try:
        [task_id] = client.submit(
            # Its retry, once the worker is killed, ends at once.
            harness.submission(
                f"[ -e {pid_file} ] && exit 0; echo $$ > {pid_file}; sleep 300", "long"
            )
        )
        running = wait_until(
            lambda: (lambda t: t if t.status == pb.RUNNING else None)(client.get(task_id)),
            timeout=30,
            message="the task running",
        )
        task_pid = int(wait_until(lambda: pid_file.read_text().strip(), timeout=30))
        worker_id = running.worker_id
        worker_pid = _pid_of(worker_id)
        found = _guardian_of(worker_id)
        assert worker_pid is not None and found is not None
        guardian_pid, guardian_parent = found
        zygote_pid = int(Path(f"/proc/{worker_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert guardian_parent == zygote_pid, "the zygote's child, not the worker's"
        assert b"vahana_worker.zygote" in Path(f"/proc/{zygote_pid}/cmdline").read_bytes()
        log = server_with_workers.state_dir / "logs" / f"{worker_id}.log"
        assert f"guardian={guardian_pid}" in log.read_text()

        os.kill(worker_pid, signal.SIGKILL)
        wait_until(
            lambda: not harness.pid_alive(task_pid),
            timeout=30,
            message="the task's shell ended by the guardian",
        )
        wait_until(
            lambda: not Path(f"/proc/{guardian_pid}").exists(),
            timeout=30,
            message="the guardian gone once its work is done, reaped by the zygote (no zombie)",
        )
        assert "worker gone; ended what its tasks left running" in log.read_text()
    finally:
        client.close()
