"""The local pool: workers are real subprocesses that leave with the process that started them."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration import harness
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
