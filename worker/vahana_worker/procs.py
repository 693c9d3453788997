"""Processes as /proc shows them, and the marker that ties a process to the task it came from.

Every task's processes carry `VAHANA_TASK=<sandbox>@<worker pid>.<start>@<worker id>` in their
environment: the task (its sandbox name, which includes the attempt), the life of the worker
process that ran it (its pid and start time: a worker restarted under the same id is another
life), and the worker's id. A process inherits its environment through fork, exec, setsid and
double forks, and keeps it when it is reparented, so the marker finds the processes a task left
behind after they left its process group and lost their parent; only a program that clears its
environment on purpose (`env -i`) drops it. The environment a process was started with is read
from /proc/<pid>/environ, which its own user (or root) may read.

Parsing is pure (`parse_stat`, `parse_environ`, `Marker.parse`, `descendants`); reading /proc
is kept to the small functions at the end. `kill` signals a process only if it is still the one
that was found (same start time), through a pidfd where the kernel has them, so a pid reused by
another process is never signalled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Iterable, Mapping

MARKER = "VAHANA_TASK"
"""The environment variable that marks a task's processes."""


@dataclasses.dataclass(frozen=True)
class Life:
    """One run of a worker process: its pid and its start time (clock ticks after boot), which
    together name one process for as long as the machine is up."""

    pid: int
    start: int

    def __str__(self) -> str:
        return f"{self.pid}.{self.start}"

    @classmethod
    def parse(cls, text: str) -> Life | None:
        pid, dot, start = text.partition(".")
        if not dot or not pid.isdigit() or not start.isdigit():
            return None
        return cls(int(pid), int(start))

    @classmethod
    def current(cls) -> Life:
        """This process's life (start 0 where /proc cannot say)."""
        own = stat(os.getpid())
        return cls(os.getpid(), own.start if own is not None else 0)

    def alive(self) -> bool:
        """True while the process of this life runs (a zombie has ended)."""
        now = stat(self.pid)
        return now is not None and now.start == self.start and not now.ended


@dataclasses.dataclass(frozen=True)
class Marker:
    """What `VAHANA_TASK` says: which task of which worker life a process belongs to."""

    worker_id: str
    life: Life
    sandbox: str
    """The task attempt's sandbox name (`executor.sandbox_name`): never holds "@"."""

    def __str__(self) -> str:
        return f"{self.sandbox}@{self.life}@{self.worker_id}"

    @classmethod
    def parse(cls, text: str) -> Marker | None:
        # The worker id comes last: it is the one part that may itself hold "@".
        parts = text.split("@", 2)
        if len(parts) != 3 or not parts[0]:
            return None
        life = Life.parse(parts[1])
        return None if life is None else cls(parts[2], life, parts[0])


@dataclasses.dataclass(frozen=True)
class Stat:
    """The fields of /proc/<pid>/stat the worker uses."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start: int
    """Start time, clock ticks after boot."""

    @property
    def ended(self) -> bool:
        """A zombie (or dead) process: it runs no more; its parent has yet to reap it."""
        return self.state in ("Z", "X", "x")


def parse_stat(text: str) -> Stat | None:
    """/proc/<pid>/stat; the command name may hold spaces and parentheses, so the fields are
    taken after its last ")"."""
    head, paren, tail = text.rpartition(")")
    if not paren:
        return None
    fields = tail.split()
    try:
        return Stat(
            pid=int(head.partition("(")[0]),
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            sid=int(fields[3]),
            state=fields[0],
            start=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def parse_environ(data: bytes, name: str) -> str | None:
    """The value of `name` in a NUL-separated environment block, or None."""
    key = name.encode() + b"="
    for item in data.split(b"\0"):
        if item.startswith(key):
            return item[len(key) :].decode(errors="replace")
    return None


def descendants(parents: Mapping[int, int], roots: Iterable[int]) -> set[int]:
    """Every pid below `roots` in a {pid: ppid} table (the roots themselves excluded)."""
    below: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        below.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in below.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


# -- reading /proc ------------------------------------------------------------------------------
# os.open/os.read on str paths: Python's open() and pathlib cost ~4x as much per file, and the
# worker reads a few of these files for every task.


def read(path: str) -> bytes | None:
    """A /proc file's content, or None if it cannot be read (the process is gone, ...)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def stat(pid: int) -> Stat | None:
    """The process's stat, or None if it is gone (or /proc cannot say)."""
    data = read(f"/proc/{pid}/stat")
    return parse_stat(data.decode(errors="replace")) if data is not None else None


def pids() -> list[int]:
    """Every process this process can see."""
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def scan() -> dict[int, Stat]:
    """Every visible process's stat."""
    table: dict[int, Stat] = {}
    for pid in pids():
        found = stat(pid)
        if found is not None:
            table[pid] = found
    return table


def thread_children(pid: int, tid: int) -> list[int] | None:
    """The children one thread of `pid` forked or adopted; None where the kernel has no
    /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN) or the thread is gone."""
    data = read(f"/proc/{pid}/task/{tid}/children")
    return [int(child) for child in data.split()] if data is not None else None


def children(pid: int) -> list[int] | None:
    """The children of `pid` (of all its threads: a child belongs to the thread that forked
    it), or None where the kernel has no children files; [] if the process is gone."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in threads:
        kids = thread_children(pid, int(tid))
        if kids is None:
            if os.path.exists(f"/proc/{pid}/task/{tid}"):
                return None
            continue  # the thread ended meanwhile
        found.extend(kids)
    return found


def tree_below(roots: Iterable[int]) -> set[int]:
    """Every live descendant of `roots`: read through the children files where the kernel
    has them (a few reads per process), else from a scan of all of /proc."""
    found: set[int] = set()
    todo = list(roots)
    while todo:
        kids = children(todo.pop())
        if kids is None:
            table = scan()
            return descendants({p: s.ppid for p, s in table.items()}, roots)
        for kid in kids:
            if kid not in found:
                found.add(kid)
                todo.append(kid)
    return found


def marker_of(pid: int) -> Marker | None:
    """The task marker in a process's environment; None if it has none or it cannot be read
    (another user's process, or gone)."""
    data = read(f"/proc/{pid}/environ")
    value = parse_environ(data, MARKER) if data is not None else None
    return Marker.parse(value) if value is not None else None


def holds_pipe(pid: int, inode: int) -> bool:
    """True if one of the process's open descriptors is the pipe with this inode."""
    wanted = f"pipe:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                return True
        except OSError:
            continue
    return False


def kill(found: Stat, sig: int) -> bool:
    """Sends `sig` to the process `found` describes if it is still that process (and not a
    zombie); False if it is gone or was not ours to signal."""
    try:
        fd = os.pidfd_open(found.pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):
        fd = -1  # no pidfd: the start time is checked just before kill()
    try:
        now = stat(found.pid)
        if now is None or now.start != found.start or now.ended:
            return False
        if fd >= 0:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(found.pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def kill_group(pgid: int, sig: int) -> None:
    """Signals a process group, if it still has members."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
