"""Finds every process of a task and ends them, including those that left its process group.

A task's processes are found one of two ways:
- `CgroupFinder`: the members of the task's cgroup (`cgroups`). Nothing a task starts can
  leave it without privileges; the worker gives every task one where it may make them.
- `MarkerFinder`: without a cgroup. While the task's main process runs, its descendants;
  then the worker's stray children (orphans reparented to the worker, which is PID 1 or a
  child subreaper: `reaper`) that are in the task's process group or session, carry the
  task's marker (`procs.Marker`) or hold the task's output pipe, and everything below them.
  Where orphans do not come to the worker, every process of /proc the same way.
Either way the task's process group is signalled as well.

`end` is what happens when a task ends, however it ends: whatever of it still runs gets
SIGTERM, then SIGKILL once the grace is over; a task that left nothing costs one look.

`end_life` and `end_earlier_lives` end the tasks of a whole worker life: the guardian
(`guardian`) calls the first when its worker died; a worker calls the second at start-up for
what an earlier life of its id left running (a worker that still runs is never touched).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from vahana_worker import cgroups, procs, reaper

_log = logging.getLogger(__name__)

POLL = 0.01
"""Seconds between looks while waiting for signalled processes to exit."""
KILL_WAIT = 2.0
"""Seconds to wait for processes sent SIGKILL to be gone before giving up on them."""


class Finder(Protocol):
    """How the live processes of one task are found."""

    def find(self) -> list[procs.Stat]: ...

    def signal(self, found: Iterable[procs.Stat], sig: int) -> int:
        """Signals those still alive; returns how many were."""
        ...


class CgroupFinder:
    """The members of the task's cgroup."""

    def __init__(self, cgroup: cgroups.TaskCgroup) -> None:
        self._cgroup = cgroup

    def find(self) -> list[procs.Stat]:
        return [s for pid in self._cgroup.members() if (s := procs.stat(pid)) and not s.ended]

    def signal(self, found: Iterable[procs.Stat], sig: int) -> int:
        if sig == signal.SIGKILL and self._cgroup.kill():
            return len(list(found))
        return sum(procs.kill(s, sig) for s in found)


class MarkerFinder:
    """A task's processes by descent, marker, process group and session (no cgroup)."""

    def __init__(
        self,
        *,
        main_pid: int,
        marker: procs.Marker,
        orphans: reaper.Reaper | None,
        output_pipe: int = 0,
    ) -> None:
        """`output_pipe`: the inode of the pipe the task's output goes to (0: none)."""
        self._main = main_pid
        self._marker = marker
        self._pipe = output_pipe
        self._reaper = orphans if orphans is not None and orphans.catches_orphans else None
        self._born: int | None = None
        """When the main process started: no process of the task started before it (a scan
        of /proc skips those). Read when first needed: /proc/<pid>/stat of a process that is
        still starting (exec) takes ~0.5 ms to read, and with a reaper it is never needed."""

    def belongs(self, found: procs.Stat) -> bool:
        """A process outside the main process's tree is the task's if it stayed in its
        process group or session (whose ids are the main process's pid, not reused before the
        executor reaps it, which it does last), carries its marker, or holds its output pipe
        (one that cleared its environment still does, unless it closed it: then it also no
        longer keeps the task's output from ending)."""
        if self._main in (found.pgid, found.sid):
            return True
        if procs.marker_of(found.pid) == self._marker:
            return True
        return bool(self._pipe) and procs.holds_pipe(found.pid, self._pipe)

    def find(self) -> list[procs.Stat]:
        if self._reaper is not None:
            roots = [self._main, *(s.pid for s in self._reaper.strays() if self.belongs(s))]
            pids = procs.tree_below(roots) | set(roots[1:])
        else:
            table = procs.scan()
            if self._born is None:
                main = table.get(self._main)
                self._born = main.start if main is not None else 0
            born, me = self._born, os.getpid()
            outside = [
                p
                for p, s in table.items()
                if s.start >= born and p not in (self._main, me) and self.belongs(s)
            ]
            roots = [self._main, *outside]
            pids = procs.descendants({p: s.ppid for p, s in table.items()}, roots) | set(outside)
        pids.discard(self._main)  # the executor's own child; signalled as the group's leader
        return [s for pid in pids if (s := procs.stat(pid)) and not s.ended]

    def signal(self, found: Iterable[procs.Stat], sig: int) -> int:
        if self._reaper is None:
            return sum(procs.kill(s, sig) for s in found)
        with self._reaper.holding():  # strays are not reaped (their pids kept) meanwhile
            return sum(procs.kill(s, sig) for s in found)


def end(
    finder: Finder,
    *,
    pgid: int,
    grace: float,
    termed_at: float | None = None,
    wait: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Ends what is left of a task whose main process has exited: SIGTERM to all of it (unless
    it was sent at `termed_at` already), SIGKILL to what is left when the grace is over.
    `wait(seconds)` passes the time in between (the executor reads the task's output
    meanwhile). Returns how many processes were left; 0 costs one look."""
    left = finder.find()
    procs.kill_group(pgid, signal.SIGKILL if termed_at is not None else signal.SIGTERM)
    if not left:
        return 0
    count = len(left)
    if termed_at is None:
        finder.signal(left, signal.SIGTERM)
        termed_at = clock()
    while left and clock() < termed_at + grace:
        wait(POLL)
        left = finder.find()
    deadline = clock() + KILL_WAIT
    while left:
        procs.kill_group(pgid, signal.SIGKILL)
        finder.signal(left, signal.SIGKILL)
        if clock() >= deadline:
            _log.warning(
                "task processes outlived SIGKILL", extra={"kv": {"pids": [s.pid for s in left]}}
            )
            break
        wait(POLL)
        left = finder.find()
    return count


def _end_all(find: Callable[[], list[procs.Stat]], grace: float) -> int:
    """SIGTERM to what `find` finds, SIGKILL after `grace` to what is left; returns how many
    processes there were at first."""
    first = find()
    if not first:
        return 0
    for found in first:
        procs.kill(found, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = first
    while left and time.monotonic() < deadline:
        time.sleep(POLL)
        left = find()
    deadline = time.monotonic() + KILL_WAIT
    while left and time.monotonic() < deadline:
        for found in left:
            procs.kill(found, signal.SIGKILL)
        time.sleep(POLL)
        left = find()
    return len(first)


def marked(accept: Callable[[procs.Marker], bool]) -> list[procs.Stat]:
    """Every live process of /proc whose marker `accept`s (those this user may read)."""
    me = os.getpid()
    found = []
    for pid in procs.pids():
        if pid == me:
            continue
        marker = procs.marker_of(pid)
        if marker is not None and accept(marker):
            now = procs.stat(pid)
            if now is not None and not now.ended:
                found.append(now)
    return found


def end_cgroups(task_cgroups: Iterable[cgroups.TaskCgroup], grace: float) -> int:
    """Ends the processes in these task cgroups (SIGTERM, SIGKILL after `grace`) and removes
    the cgroups. Returns how many processes there were."""
    count = 0
    for cgroup in task_cgroups:
        count += _end_all(CgroupFinder(cgroup).find, grace)
        cgroup.remove()
    return count


def end_life(
    *,
    worker_id: str,
    life: procs.Life,
    task_cgroups: Iterable[cgroups.TaskCgroup],
    grace: float,
) -> int:
    """Ends every process of one worker life's tasks: those in its task cgroups (which are
    removed) and those with its marker. Returns how many processes there were."""
    count = end_cgroups(task_cgroups, grace)
    count += _end_all(lambda: marked(lambda m: m.worker_id == worker_id and m.life == life), grace)
    return count


def end_earlier_lives(*, worker_id: str, life: procs.Life, grace: float) -> int:
    """Ends what earlier, dead lives of this worker id left running (found by marker; their
    cgroups are swept by `cgroups.Manager.sweep`). Returns how many processes there were."""
    dead: dict[procs.Life, bool] = {}

    def earlier(marker: procs.Marker) -> bool:
        if marker.worker_id != worker_id or marker.life == life:
            return False
        if marker.life not in dead:
            dead[marker.life] = not marker.life.alive()
        return dead[marker.life]

    return _end_all(lambda: marked(earlier), grace)
