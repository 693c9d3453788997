"""A task killed by a signal is reported when it dies, with real workers over real gRPC.

Its main process killed by a signal (its own, or the worker's at its timeout), a task is over:
its result, and the slot it held, must not wait for the kill grace. Only one killed by SIGTERM
from elsewhere waits, briefly, for the worker's own stop (a batch system ending the allocation
signals both). In both of the worker's ways of finding a task's processes
(`procs_helpers.MODES`: task cgroups, or `--cgroups off` with the subreaper and the marker).
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.integration.worker import procs_helpers as ph
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

GRACE = 5.0
"""--kill-grace of the workers here (seconds): a result that waited for it is unmistakable."""
PROMPT = 1.5
"""Seconds within which a killed task's result must follow its death."""


def final(client: harness.Client, task_id: str) -> tasks_pb.TaskInfo:
    return wait_until(
        lambda: (lambda t: t if t.status in harness.FINAL else None)(client.get(task_id)),
        timeout=30,
        message=f"task {task_id} final",
    )


def seconds_run(task: tasks_pb.TaskInfo) -> float:
    """From the worker's RUNNING to the scheduler's receipt of the result."""
    return float(task.finished_at.ToNanoseconds() - task.started_at.ToNanoseconds()) / 1e9


@dataclasses.dataclass(frozen=True)
class Killed:
    """A task whose main process is killed by a signal: by itself, or by the worker at its
    timeout (seconds; 0: none)."""

    command: str
    status: int
    signal: int
    timeout: float = 0.0

    def submission(self) -> tasks_pb.TaskSubmission:
        options = {"timeout_seconds": self.timeout} if self.timeout else {}
        return harness.submission(self.command, "killed", **options)


KILLED = (
    Killed("kill -9 $$", pb.FAILED, signal.SIGKILL),
    Killed("kill $$", pb.FAILED, signal.SIGTERM),
    Killed("exec sleep 1000", pb.TIMED_OUT, signal.SIGTERM, timeout=1.0),
)


@ph.MODES
def test_a_task_killed_by_a_signal_is_reported_when_it_dies_not_a_grace_later(
    mode: str, client: harness.Client, start_worker: WorkerFactory
) -> None:
    start_worker(f"signalled-{mode}", extra=(*ph.mode_flags(mode), f"--kill-grace={GRACE:g}s"))
    ids = client.submit(*(killed.submission() for killed in KILLED))
    late: dict[str, float] = {}
    for task_id, killed in zip(ids, KILLED, strict=True):
        task = final(client, task_id)
        assert (task.status, task.exit_code) == (killed.status, 128 + killed.signal), task
        assert (task.task_failures, task.infra_failures) == (1, 0), task
        late[killed.command] = round(seconds_run(task) - killed.timeout, 2)
    print(f"\n{mode}: seconds from the task's death to its result: {late}")
    assert all(seconds < PROMPT for seconds in late.values()), late


def test_a_task_terminated_along_with_its_worker_is_the_worker_s_failure(
    client: harness.Client, start_worker: WorkerFactory, state_dir: Path
) -> None:
    """SIGTERM to the task and to its worker at once, as a batch system ending the allocation
    sends them: the task's death is not charged to the task."""
    pid_file = state_dir / "task.pid"
    worker = start_worker("allocation", extra=(f"--kill-grace={GRACE:g}s",))
    with ph.killed_afterwards(pid_file):
        [task_id] = client.submit(
            harness.submission(f"echo $$ > {pid_file}; exec sleep 1000", "ended-with-worker")
        )
        [pid] = wait_until(lambda: ph.pids_in(pid_file), timeout=20, message="the task's pid")
        os.kill(pid, signal.SIGTERM)
        os.kill(worker.pid, signal.SIGTERM)
        assert worker.terminate() == 0
    wait_until(
        lambda: client.get(task_id).infra_failures,
        timeout=10,
        message="the attempt counted as the infrastructure's failure",
    )
    task = client.get(task_id)
    assert (task.task_failures, task.infra_failures) == (0, 1), task
