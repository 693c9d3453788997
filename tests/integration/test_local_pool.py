"""The local pool: workers are real subprocesses that leave with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from vahana.core import models
from vahana.proto import worker_pb2

from tests.integration import harness
from tests.integration.pools.embedded import EmbeddedScheduler
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_local_workers_exit_when_the_scheduler_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from vahana.app import service, settings
        async def main():
            config = settings.load({{"server.port": 0, "store.state_dir": {str(tmp_path)!r},
                                     "local_pool.workers": 2}})
            process = service.SchedulerProcess(config)
            await process.start()
            for worker in process.pool.list_workers():
                print(worker.detail.split()[-1], flush=True)
            await asyncio.Event().wait()
        asyncio.run(main())
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(parent.stdout.readline()) for _ in range(2)]
        assert all(harness.pid_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_until(
            lambda: not any(harness.pid_alive(pid) for pid in pids),
            timeout=45,
            message="local workers gone after their scheduler was killed",
        )
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_killed_local_worker_has_its_task_rerun_at_once_and_completed_once(
    state_dir: Path,
) -> None:
    """kill -9 of a local worker mid-task: the pool sees its process end and the scheduler
    dispatches a new attempt within 2 s — with 30 s heartbeats, so no missed heartbeat could
    have told it — which completes on the other worker, once."""
    marker = state_dir / "ran"
    settings = {
        "local_pool.workers": 2,
        "scheduler.heartbeat_interval_seconds": 30.0,
        "metrics.port": 0,
    }
    with EmbeddedScheduler(state_dir, "", **settings) as sched:
        assert sched.client is not None and sched.process is not None
        client, pool = sched.client, sched.process.pool
        assert pool is not None
        wait_until(lambda: len(sched.workers()) == 2, timeout=30, message="2 local workers")
        events = sched.watch()
        [task] = client.submit(harness.submission(f"sleep 2; echo ran >> {marker}", "victim"))
        wait_until(lambda: client.status(task) == worker_pb2.RUNNING, timeout=20)
        victim = client.get(task).worker_id
        killed = time.monotonic()
        os.kill(pool.pid_of(victim), signal.SIGKILL)
        rerun = wait_until(lambda: events.first(task, attempt=2), timeout=30, message="attempt 2")
        seconds = rerun.at - killed
        print(f"local worker kill -9 → attempt 2 dispatched: {seconds:.3f} s (heartbeat 30 s)")
        assert seconds < 2.0, f"the new attempt took {seconds:.2f} s"
        assert rerun.worker_id != victim
        wait_until(lambda: client.status(task) in harness.FINAL, timeout=30, message="rerun")
        info = client.get(task)
        assert (info.status, info.attempt, info.infra_failures) == (worker_pb2.COMPLETED, 2, 1)
        lost, completed = sched.attempts(task)
        assert (lost.worker_id, lost.phase, lost.failure_kind) == (
            victim,
            models.TaskPhase.FAILED,
            models.FailureKind.INFRASTRUCTURE,
        )
        assert lost.message.startswith(f"worker {victim} exited: its process (pid ")
        assert lost.message.endswith("was killed by signal 9")
        assert (completed.worker_id, completed.phase) == (
            rerun.worker_id,
            models.TaskPhase.COMPLETED,
        )
        # Exactly once: nothing of the killed attempt is left that could still write.
        wait_until(
            lambda: not harness.processes_in(state_dir / "workers" / victim),
            timeout=30,
            message="no process of the killed worker's task",
        )
        assert marker.read_text().splitlines() == ["ran"]
