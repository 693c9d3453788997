"""Looking at real processes from a test: a worker's children and zombies, the pids a task
wrote down, and killing whatever a failed test left behind."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana_worker import cgroups, procs

from tests.conftest import require


def children_of(pid: int) -> list[procs.Stat]:
    """Every process whose parent is `pid`, zombies included (a scan of /proc)."""
    return [found for found in procs.scan().values() if found.ppid == pid]


def zombies_of(pid: int) -> list[procs.Stat]:
    return [found for found in children_of(pid) if found.ended]


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has ended)."""
    found = procs.stat(pid)
    return found is not None and not found.ended


def pids_in(path: Path) -> list[int]:
    """The pids a task wrote to `path`, one a line."""
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]


def guardian_of(worker_pid: int) -> int:
    """The pid of a worker's guardian (its child running `vahana_worker.guardian`)."""
    for child in children_of(worker_pid):
        cmdline = procs.read(f"/proc/{child.pid}/cmdline") or b""
        if b"vahana_worker import guardian" in cmdline and not child.ended:
            return child.pid
    raise AssertionError(f"worker {worker_pid} has no guardian")


def task_cgroups_available() -> None:
    """Skips (fails under CI=true) where this process may not make task cgroups."""
    plan, why = cgroups.discover()
    require(plan is not None, f"no cgroups this process may create: {why}")


@contextlib.contextmanager
def killed_afterwards(*files: Path) -> Iterator[None]:
    """Kills the pids listed in `files` when the block ends: a failed test must not leave
    `sleep 1000`s behind."""
    try:
        yield
    finally:
        for path in files:
            for pid in pids_in(path):
                found = procs.stat(pid)
                if found is not None and not found.ended:
                    procs.kill(found, signal.SIGKILL)


ESCAPEES = (
    "setsid sleep 1000 & echo $! >> {pids}; "  # a new session: out of the process group
    "(setsid sleep 1001 & echo $! >> {pids}); "  # double fork: reparented at once
    "(setsid bash -c 'trap \"\" TERM; echo $$ >> {pids}; while :; do sleep 0.1; done' &); "
    "sleep 1002 & echo $! >> {pids}; "  # a plain background job, in the group
)
"""Four processes that outlive the command unless the worker ends them; one ignores SIGTERM."""

CLEARED = (
    "(env -i setsid sleep 1003 & echo $! >> {pids}); "
    "(env -i setsid sleep 1004 </dev/null >/dev/null 2>&1 & echo $! >> {pids}); "
)
"""Two escapees that also clear their environment (no marker), in this order: one still holds
the task's output pipe (by which the worker finds it), one closed it too — only a cgroup or
the reaper's rule for unmarked orphans (ended once no task runs) catches that one."""


def escapee_command(pids: Path, tail: str, *, cleared: Path | None = None) -> str:
    """The escapees (their pids to `pids`), the two that cleared their environment (their
    pids to `cleared`), then `tail`."""
    extra = CLEARED.format(pids=cleared) if cleared is not None else ""
    return ESCAPEES.format(pids=pids) + extra + tail


def mode_flags(mode: str) -> tuple[str, ...]:
    """Worker flags for a test mode: "cgroups" (task cgroups, skipped where there are none)
    or "marker" (--cgroups off: the subreaper and the tasks' marker)."""
    if mode == "cgroups":
        task_cgroups_available()
        return ("--cgroups=auto",)
    return ("--cgroups=off",)


MODES = pytest.mark.parametrize("mode", ["cgroups", "marker"])
