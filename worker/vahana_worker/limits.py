"""Per-task resource limits: what they are, how a task's processes get them, and which one a
failed task hit.

How they are applied. The worker is multithreaded (poll loop, heartbeats, one supervisor and one
output reader per task), so the limits are NOT set in a `preexec_fn`: code between fork and exec
in a threaded program may deadlock on a lock another thread held at fork time. Instead the task's
command line is wrapped: `python3 -I -S -c LAUNCHER RLIMIT_AS=… -- bash -c <command>`. The
launcher is a separate, single-threaded process that calls `setrlimit` (soft = hard, so the task
cannot raise them; CPU time gets a hard limit one second past the soft one so that SIGXCPU, not
SIGKILL, ends the task), resets SIGXFSZ and SIGPIPE to their defaults (Python ignores them, and an
ignored signal stays ignored across exec), and execs bash. `subprocess.Popen` without
`preexec_fn` forks and execs in C, which is safe with threads. The launcher's source is embedded
here, so it works from a zipapp too; it costs one interpreter start (~20 ms, `-S` skips `site`).

What each limit is (setrlimit semantics, all per process except NPROC):
- cpu_seconds → RLIMIT_CPU: CPU time of each process; SIGXCPU at the limit.
- memory_bytes → RLIMIT_AS: address space of each process, not resident memory. Programs that
  reserve much more than they touch (the JVM, Go, glibc's 64 MiB malloc arenas per thread) need
  headroom; allocations past it fail with ENOMEM (MemoryError, std::bad_alloc, ...).
- processes → RLIMIT_NPROC: counts EVERY process of the task's real user id, the worker's and other
  tasks' included, and is not enforced for root (CAP_SYS_RESOURCE / CAP_SYS_ADMIN). A worker
  running as root should run tasks as another user (`--task-user`, which the launcher switches
  to after setting the limits); the limit is then shared by every task of that user, so it is
  per task only with one task slot or a user per slot.
Where the worker may create cgroups (`cgroups`), memory and processes are limited by a cgroup
per task instead — memory.max (resident memory of all the task's processes together; past it
the kernel kills one of them) and pids.max (the task's processes together) — and the launcher
only joins it; the other limits stay setrlimit's.
- open_files → RLIMIT_NOFILE: descriptors of each process.
- file_size_bytes → RLIMIT_FSIZE: largest file a process may write; SIGXFSZ past it.

Which limit a failed task hit is decided by `diagnose`, a pure function of the exit status and the
output: signals are certain (SIGXCPU, SIGXFSZ); memory, process and open-file limits surface only
as failed system calls, recognised by the messages programs print for them. A task that handles
such a failure itself and exits 0 has not failed.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
from collections.abc import Sequence

LAUNCHER = """\
import os, resource, signal, sys
args = sys.argv[1:]
split = args.index("--")
user = None
parent_death = None
for item in args[:split]:
    name, _, value = item.partition("=")
    soft, _, hard = value.partition(":")
    if name == "USER":
        user = (int(soft), int(hard))
        continue
    if name == "PDEATHSIG":
        parent_death = (int(soft), int(hard))
        continue
    if name == "CGROUP":
        try:
            with open(value, "w") as join:
                join.write("0")  # itself: single-threaded here (cgroups.join_files)
        except OSError as exc:
            sys.stderr.write("vahana: could not join the task's cgroup %s: %s\\n" % (value, exc))
            os._exit(126)
        continue
    which = getattr(resource, name)
    limit = (int(soft), int(hard or soft))
    try:
        resource.setrlimit(which, limit)
    except (ValueError, OSError):
        # Above the hard limit we may not raise: take the hard limit, never more.
        current = resource.getrlimit(which)[1]
        resource.setrlimit(which, (min(limit[0], current), current))
for sig in (signal.SIGPIPE, signal.SIGXFSZ):
    signal.signal(sig, signal.SIG_DFL)
if parent_death is not None:
    import ctypes  # before the user switch: the new user may not be able to read the library
if user is not None:
    try:
        os.setgroups([])
        os.setgid(user[1])
        os.setuid(user[0])
    except OSError as exc:
        sys.stderr.write("vahana: could not switch to uid %d gid %d: %s\\n" % (user + (exc,)))
        os._exit(126)
if parent_death is not None:
    # After the user switch, which clears it; exec keeps it.
    ctypes.CDLL(None, use_errno=True).prctl(1, parent_death[0], 0, 0, 0)
    if os.getppid() != parent_death[1]:
        sys.stderr.write("vahana: the worker exited before the task started\\n")
        os._exit(126)
try:
    os.execvp(args[split + 1], args[split + 1:])
except OSError as exc:
    sys.stderr.write("vahana: could not start %s: %s\\n" % (args[split + 1], exc))
    os._exit(127)
"""
"""Source of the launcher:
`-c LAUNCHER [USER=UID:GID] [PDEATHSIG=SIGNAL:PARENT] [CGROUP=PROCS_FILE]... NAME=SOFT[:HARD]...
-- PROGRAM ARGS...`.

The launcher joins the task's cgroups and sets the limits first (both need the worker's
privileges), then switches the user (groups, gid, uid), then asks for SIGNAL when its parent
(the worker's thread that started it, pid PARENT) ends, then execs the program."""

CPU_GRACE = 1
"""Seconds between the soft CPU limit (SIGXCPU) and the hard one (SIGKILL)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Hard limits on one task attempt; 0 means none (or, in a task's spec, the worker's)."""

    cpu_seconds: int = 0
    """CPU time of each process, seconds."""
    memory_bytes: int = 0
    """Address space of each process, bytes."""
    processes: int = 0
    """Processes of the task's user id at once."""
    open_files: int = 0
    """Open descriptors of each process."""
    file_size_bytes: int = 0
    """Largest file a process may write, bytes."""

    def over(self, defaults: Limits) -> Limits:
        """These limits, with `defaults` where they are 0."""
        if not defaults.any:  # the common case, asked for every task
            return self
        return Limits(
            **{
                field.name: getattr(self, field.name) or getattr(defaults, field.name)
                for field in dataclasses.fields(self)
            }
        )

    @property
    def any(self) -> bool:
        return bool(
            self.cpu_seconds
            or self.memory_bytes
            or self.processes
            or self.open_files
            or self.file_size_bytes
        )


def rlimit_args(limits: Limits) -> list[str]:
    """The launcher's `NAME=SOFT[:HARD]` arguments for the limits that are set."""
    args: list[str] = []
    if limits.cpu_seconds:
        args.append(f"RLIMIT_CPU={limits.cpu_seconds}:{limits.cpu_seconds + CPU_GRACE}")
    if limits.memory_bytes:
        args.append(f"RLIMIT_AS={limits.memory_bytes}")
    if limits.processes:
        args.append(f"RLIMIT_NPROC={limits.processes}")
    if limits.open_files:
        args.append(f"RLIMIT_NOFILE={limits.open_files}")
    if limits.file_size_bytes:
        args.append(f"RLIMIT_FSIZE={limits.file_size_bytes}")
    return args


def command_line(
    argv: Sequence[str],
    limits: Limits,
    *,
    user: tuple[int, int] | None = None,
    cgroup_joins: Sequence[str] = (),
    python: str = "",
    parent: int = 0,
) -> list[str]:
    """`argv` as is when no limit is set, no `user` (uid, gid) given and no cgroup to join
    (`cgroups.TaskCgroup.join_files`), else wrapped in the launcher that does those; with
    `parent` (the worker's pid) the launched program is killed when the worker's thread that
    started it ends (PR_SET_PDEATHSIG)."""
    if not limits.any and user is None and not cgroup_joins:
        return list(argv)
    head = [python or sys.executable, "-I", "-S", "-c", LAUNCHER]
    if user is not None:
        head.append(f"USER={user[0]}:{user[1]}")
    if parent:
        head.append(f"PDEATHSIG={int(signal.SIGKILL)}:{parent}")
    head.extend(f"CGROUP={path}" for path in cgroup_joins)
    return [*head, *rlimit_args(limits), "--", *argv]


def format_bytes(size: int) -> str:
    """1048576 → "1Mi"; sizes that are no whole Ki/Mi/Gi/Ti stay in bytes."""
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size} bytes"


def format_seconds(seconds: int) -> str:
    return f"{seconds}s"


_MEMORY_MARKERS = (
    "Cannot allocate memory",
    "MemoryError",
    "bad_alloc",
    "out of memory",
    "Out of memory",
    "memory exhausted",
    "failed to allocate",
)
_PROCESS_MARKERS = (
    "Resource temporarily unavailable",
    "fork: retry",
    "Cannot fork",
    "cannot fork",
)
_OPEN_FILE_MARKERS = ("Too many open files",)
_FILE_SIZE_MARKERS = ("File size limit exceeded", "File too large")
_CPU_MARKERS = ("CPU time limit exceeded",)


def _last_marker(output: str, markers: Sequence[str]) -> int:
    return max(output.rfind(marker) for marker in markers)


def diagnose(
    exit_code: int, output: str, limits: Limits, cgroup_hit: frozenset[str] = frozenset()
) -> str | None:
    """Which limit a task that exited with `exit_code` (shell convention: 128+N for signal N)
    after printing `output` hit, as a status message; None if none of its limits explains it.

    Only limits that were set are considered. The task's cgroup counters (`cgroup_hit`:
    "memory" if the kernel OOM-killed one of its processes, "pids" if it refused a fork) and
    signals decide first; otherwise the limit whose message comes last in the output wins (the
    failure that ended the task is usually the last thing it printed).
    """
    if exit_code == 0:
        return None
    if "memory" in cgroup_hit and limits.memory_bytes:
        return (
            f"hit its memory limit ({format_bytes(limits.memory_bytes)} for all its processes;"
            " the kernel killed one)"
        )
    if "pids" in cgroup_hit and limits.processes:
        return f"hit its process limit ({limits.processes} processes at once)"
    if limits.cpu_seconds and (
        exit_code == 128 + signal.SIGXCPU or _last_marker(output, _CPU_MARKERS) >= 0
    ):
        return f"exceeded its cpu-time limit ({format_seconds(limits.cpu_seconds)})"
    if limits.file_size_bytes and exit_code == 128 + signal.SIGXFSZ:
        return f"exceeded its file-size limit ({format_bytes(limits.file_size_bytes)})"
    candidates: list[tuple[int, str]] = []
    if limits.file_size_bytes:
        candidates.append(
            (
                _last_marker(output, _FILE_SIZE_MARKERS),
                f"exceeded its file-size limit ({format_bytes(limits.file_size_bytes)})",
            )
        )
    if limits.memory_bytes:
        candidates.append(
            (
                _last_marker(output, _MEMORY_MARKERS),
                f"hit its memory limit ({format_bytes(limits.memory_bytes)} of address space)",
            )
        )
    if limits.processes:
        candidates.append(
            (
                _last_marker(output, _PROCESS_MARKERS),
                f"hit its process limit ({limits.processes})",
            )
        )
    if limits.open_files:
        candidates.append(
            (
                _last_marker(output, _OPEN_FILE_MARKERS),
                f"hit its open-files limit ({limits.open_files})",
            )
        )
    position, message = max(candidates, default=(-1, ""))
    return message if position >= 0 else None


def cpu_seconds_of(seconds: float) -> int:
    """A duration as whole CPU seconds for RLIMIT_CPU, rounded up (0 stays 0)."""
    return math.ceil(seconds) if seconds > 0 else 0
