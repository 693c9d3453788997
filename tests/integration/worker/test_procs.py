"""Finding processes on this host: a child among its parent's children, signalled only while
it is the process that was found; bash joining a cgroup with the join prefix."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from vahana_worker import cgroups, procs

from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_this_process_is_found_among_its_parent_s_children() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in (procs.children(os.getpid()) or [])
        assert child.pid in procs.tree_below([os.getpid()])
        found = procs.stat(child.pid)
        assert found is not None and found.ppid == os.getpid()
        assert procs.kill(found, signal.SIGTERM)
        child.wait(timeout=10)
        assert not procs.kill(found, signal.SIGTERM)  # gone: nothing signalled
    finally:
        child.kill()
        child.wait()


def test_the_join_prefix_keeps_the_command_s_own_line_numbers(tmp_path: Path) -> None:
    join_file = tmp_path / "tasks"
    join_file.touch()
    command = "echo $LINENO\nfalse_command_here 2>/dev/null; echo $LINENO"
    shown = subprocess.run(
        ["bash", "-c", cgroups.join_prefix([str(join_file)]) + command],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.split() == ["1", "2"]
    assert join_file.read_text().strip() == "0"  # the shell moved itself
    unwritable = subprocess.run(
        ["bash", "-c", cgroups.join_prefix(["/proc/no/such/cgroup.procs"]) + "echo ran"],
        capture_output=True,
        text=True,
    )
    assert unwritable.returncode == 126 and "ran" not in unwritable.stdout
    assert "could not join the task's cgroup" in unwritable.stderr


def test_a_task_started_by_the_limits_launcher_dies_with_the_worker(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a stand-in worker starts `sleep` through the launcher and is gone
    (as after kill -9); the sleep gets SIGKILL from the kernel, no guardian needed."""
    stand_in = (
        "import os, subprocess, sys\n"
        "from vahana_worker import limits\n"
        "argv = limits.command_line(['sleep', '1000'], limits.Limits(open_files=64),"
        " parent=os.getpid())\n"
        "child = subprocess.Popen(argv)\n"
        "print(child.pid, flush=True)\n"
        "sys.stdin.read()\n"
        "os._exit(0)\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", stand_in], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None and worker.stdin is not None
    task = int(worker.stdout.readline())
    try:
        wait_until(
            lambda: (procs.read(f"/proc/{task}/cmdline") or b"").startswith(b"sleep"),
            timeout=10,
            message="the launcher exec'd the task",
        )
        worker.kill()
        worker.wait()
        wait_until(lambda: not _alive(task), timeout=5, message="the task killed with its worker")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(task, signal.SIGKILL)


def _alive(pid: int) -> bool:
    found = procs.stat(pid)
    return found is not None and not found.ended
