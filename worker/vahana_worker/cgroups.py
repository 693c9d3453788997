"""Per-task cgroups: every task's processes tracked together, and its memory and process limits
enforced by the kernel for its whole process tree, where the worker may create cgroups.

setrlimit's RLIMIT_AS limits each process's address space (not memory), and RLIMIT_NPROC counts
every process of a user id and does not bind root. A cgroup per task limits what the task's
processes use together: `memory.max` (v2) / `memory.limit_in_bytes` (v1) — past it the kernel's
OOM killer ends a process of the task — and `pids.max` — past it fork() fails. After the task
the worker reads the cgroup's event counters (`oom_kill`, `max`) to say which limit it hit,
kills whatever the task left in the cgroup (even processes that left its process group), and
removes the cgroup (or keeps it for the next task, below).

Where task cgroups go (`discover`):
- cgroup v2, with a delegated directory (`--cgroup-root`, e.g. under a systemd unit with
  `Delegate=yes`): the directory must hold no process; the worker enables the memory and pids
  controllers in its `cgroup.subtree_control` and makes one child per task.
- cgroup v2, without one: the worker's own cgroup, if the worker is its only process (then the
  worker moves itself into a `worker` leaf, as the "no internal processes" rule requires, and
  uses the cgroup as above).
- cgroup v1: the memory and pids hierarchies, a child of the worker's own cgroup in each.
Otherwise (no writable hierarchy, controllers not offered) there are none, `discover` says why,
and memory and process limits fall back to setrlimit. Each controller is used where present.

Every task gets a cgroup where there are any, limits or not: it is how the worker finds all of
a task's processes when the task ends, including those that left its process group (`taskprocs`).
A task without memory or process limits gets one directory, in the pids hierarchy where there is
one, with no limit written; once its task has ended, such a directory, empty and with its event
counters at zero, is kept as a spare for the next such task (`Manager.done`) instead of removed
and made again (~40 µs of the kernel's time each, and the worker's on top).

A task's process joins its cgroups before anything of the task runs: the limits launcher writes
"0" (itself) into each join file when it runs anyway (setrlimit, another user); otherwise `bash`
does, in a prefix to the task's command (`join_prefix`), which costs a few µs where a launcher
would cost an interpreter's start (~10 ms). In a v1 hierarchy the join file is `tasks`, not
`cgroup.procs`: the kernel moves a whole process only under a global lock whose taking waits for
an RCU grace period (~13 ms per task on a quiet machine, measured), while a thread moving itself
skips it; the joining process is single-threaded (a shell, the launcher), so moving its one
thread moves all of it. v2 has only `cgroup.procs`.

Names: `<prefix>@<life>@<task>`, the prefix being `vahana-<worker id>` and the life the worker
process's pid and start time (`procs.Life`). A worker sweeps at start the cgroups its id's earlier
lives left (`sweep`), but not those of a life that still runs (two workers wrongly given one id
never kill each other's tasks); its guardian ends its own life's (`of_life`) when it dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from vahana_worker import procs, spares

_log = logging.getLogger(__name__)

MEMORY = "memory"
PIDS = "pids"
CONTROLLERS = (MEMORY, PIDS)
TRACKING = (PIDS, MEMORY)
"""The hierarchy a task without limits is tracked in: the first of these the plan has (the
pids controller is the lighter one)."""

NAME_MAX = 255
"""Longest name of a directory (a cgroup)."""
PREFIX_MAX = 64
"""Longest prefix kept as it is; a longer one is cut and given a digest, so that a name cut
to NAME_MAX still holds its prefix and life whole (sweeps match on them)."""
REMOVE_WAIT = 2.0
"""Seconds to wait for a task cgroup to empty (its killed processes to exit) before rmdir."""
SPARES = 64
"""Most emptied cgroups of tasks without limits kept for the next ones (as many as ran at once
are needed)."""


class CgroupError(OSError):
    """A task cgroup could not be made; the message says which file and why."""


@dataclasses.dataclass(frozen=True)
class Mount:
    path: Path
    version: int
    controllers: frozenset[str]
    """v1: the controllers the hierarchy carries (its mount options); v2: empty."""


def parse_mountinfo(text: str) -> list[Mount]:
    """cgroup mounts from /proc/self/mountinfo."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        path = Path(fields[4].replace("\\040", " "))
        if tail[0] == "cgroup2":
            mounts.append(Mount(path, 2, frozenset()))
        elif tail[0] == "cgroup":
            options = set(tail[2].split(","))
            mounts.append(Mount(path, 1, frozenset(options & set(CONTROLLERS))))
    return mounts


def parse_self_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; the v2 entry under the key ""."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where each controller's task cgroups go: {controller: (directory, cgroup version)}."""

    parents: Mapping[str, tuple[Path, int]]

    def describe(self) -> str:
        return ", ".join(
            f"{name} v{version} under {path}" for name, (path, version) in self.parents.items()
        )


def _inside(mount: Path, cgroup_path: str) -> Path:
    return mount / cgroup_path.lstrip("/")


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, value: str) -> None:
    with open(path, "w") as file:
        file.write(value)


def _v2_parent(mount: Mount, own: str, root: str) -> tuple[Path | None, set[str], str]:
    """The delegated v2 directory task cgroups go under, prepared, with the controllers it
    enabled for them; or None and why not."""
    if root:
        parent = Path(root)
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return None, set(), f"cannot create --cgroup-root {parent}: {error.strerror}"
        if _read(parent / "cgroup.procs").split():
            why = f"--cgroup-root {parent} holds processes; give an empty, delegated one"
            return None, set(), why
    else:
        parent = _inside(mount.path, own)
        members = _read(parent / "cgroup.procs").split()
        if members:
            if members != [str(os.getpid())]:
                return (
                    None,
                    set(),
                    (
                        f"the worker's cgroup {parent} holds other processes; run the worker in a "
                        "delegated cgroup of its own (systemd Delegate=yes) or pass --cgroup-root"
                    ),
                )
            leaf = parent / "worker"
            try:
                leaf.mkdir(exist_ok=True)
                _write(leaf / "cgroup.procs", str(os.getpid()))
            except OSError as error:
                return None, set(), f"cannot move the worker into {leaf}: {error.strerror}"
    offered = set(_read(parent / "cgroup.controllers").split())
    enabled = offered & set(CONTROLLERS)
    if not enabled:
        listed = " ".join(sorted(offered)) or "none"
        why = f"{parent} offers neither memory nor pids (its cgroup.controllers: {listed})"
        return None, set(), why
    try:
        _write(parent / "cgroup.subtree_control", " ".join(f"+{name}" for name in enabled))
    except OSError as error:
        why = f"cannot enable controllers in {parent}/cgroup.subtree_control: {error}"
        return None, set(), why
    return parent, enabled, ""


def discover(
    *,
    root: str = "",
    mountinfo: str | None = None,
    self_cgroup: str | None = None,
) -> tuple[Plan | None, str]:
    """Where task cgroups can go on this host, or (None, why none). With `root` (a delegated
    cgroup v2 directory) only that directory is considered."""
    try:
        mountinfo = mountinfo if mountinfo is not None else _read(Path("/proc/self/mountinfo"))
        self_cgroup = self_cgroup if self_cgroup is not None else _read(Path("/proc/self/cgroup"))
    except OSError as error:
        return None, f"cannot read the process's cgroups: {error}"
    mounts = parse_mountinfo(mountinfo)
    own = parse_self_cgroup(self_cgroup)
    parents: dict[str, tuple[Path, int]] = {}
    reasons: list[str] = []
    for mount in mounts if not root else []:  # v1 first: a controller there is not in v2
        for name in sorted(mount.controllers):
            if mount.version == 1 and name in own and name not in parents:
                parent = _inside(mount.path, own[name])
                if os.access(parent, os.W_OK):
                    parents[name] = (parent, 1)
                else:
                    reasons.append(f"{parent} is not writable")
    unified = next((m for m in mounts if m.version == 2), None)
    wanted = [name for name in CONTROLLERS if name not in parents]
    if wanted and unified is not None and "" in own:
        delegated: Path | None
        try:
            delegated, enabled, why = _v2_parent(unified, own[""], root)
        except OSError as error:
            delegated, enabled, why = None, set(), f"cgroup v2: {error}"
        if delegated is not None:
            for name in wanted:
                if name in enabled:
                    parents[name] = (delegated, 2)
        if why:
            reasons.append(why)
    if not parents:
        return None, "; ".join(reasons) or "no cgroup hierarchy with memory or pids is mounted"
    return Plan(parents), ""


_EVENT = re.compile(r"^(\w+) (\d+)$", re.MULTILINE)


def _events(path: Path) -> dict[str, int]:
    try:
        return {name: int(count) for name, count in _EVENT.findall(_read(path))}
    except OSError:
        return {}


@dataclasses.dataclass
class TaskCgroup:
    """The cgroup directories of one task (one per hierarchy)."""

    dirs: dict[str, tuple[Path, int]]
    """{controller: (directory, version)}; controllers of one v2 cgroup share a directory."""
    tracking: bool = False
    """Made for a task without limits (nothing written to it): another such task may reuse it."""

    @property
    def paths(self) -> set[Path]:
        """Its directories, each once (the controllers of one v2 cgroup share one)."""
        return {path for path, _ in self.dirs.values()}

    @property
    def join_files(self) -> list[str]:
        """Where a single-threaded process writes "0" to join: `tasks` in v1, else
        `cgroup.procs` (see the module's docstring)."""
        return sorted(
            {
                str(path / ("tasks" if version == 1 else "cgroup.procs"))
                for path, version in self.dirs.values()
            }
        )

    def hit(self) -> frozenset[str]:
        """The limits the task ran into: "memory" (a process OOM-killed), "pids" (a fork
        refused)."""
        hit: set[str] = set()
        if MEMORY in self.dirs:
            path, version = self.dirs[MEMORY]
            events = _events(path / ("memory.events" if version == 2 else "memory.oom_control"))
            if events.get("oom_kill", 0) > 0:
                hit.add(MEMORY)
        if PIDS in self.dirs:
            path, _ = self.dirs[PIDS]
            if _events(path / "pids.events").get("max", 0) > 0:
                hit.add(PIDS)
        return frozenset(hit)

    def members(self) -> list[int]:
        """The pids of the processes in the task's cgroups (exited ones are not listed)."""
        found: set[int] = set()
        for path in self.paths:
            found.update(_pids(path))
        return sorted(found)

    def kill(self) -> bool:
        """SIGKILL to every process at once through `cgroup.kill` (v2, Linux 5.14+); False
        where that is not offered (then they are signalled one by one)."""
        paths = {path for path, version in self.dirs.values() if version == 2}
        if not paths or len(paths) != len(self.paths):
            return False
        try:
            for path in paths:
                _write(path / "cgroup.kill", "1")
        except OSError:
            return False
        return True

    def has_children(self) -> bool:
        """Whether a process of the task made a cgroup inside its own (its members are not
        listed in the task's `cgroup.procs`)."""
        for path in self.paths:
            try:
                with os.scandir(path) as entries:
                    if any(entry.is_dir(follow_symlinks=False) for entry in entries):
                        return True
            except OSError:
                return True
        return False

    def remove(self) -> None:
        """Kills what is left in the cgroups and removes them."""
        for path in self.paths:
            _remove(path)


def join_prefix(join_files: Sequence[str]) -> str:
    """A bash snippet that moves the shell into the task's cgroups (`TaskCgroup.join_files`)
    before the task's command, which follows it on the same line (so a syntax error in the
    command runs nothing, and its line numbers stay as written); the task fails with 126 if
    the shell cannot join."""
    joins = " && ".join(f"echo 0 > {shlex.quote(path)}" for path in join_files)
    error = "vahana: could not join the task's cgroup"
    return f"{{ {joins}; }} 2>/dev/null || {{ echo {shlex.quote(error)} >&2; exit 126; }}; "


def _pids(path: Path) -> list[int]:
    # os.open/os.read: read once per task, and a text-mode open() costs ~4x as much.
    try:
        fd = os.open(f"{path}/cgroup.procs", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
    except OSError:
        return []
    finally:
        os.close(fd)
    # A process exiting may be listed as 0 (a kernel race); kill(0) would hit our own group.
    return [pid for pid in map(int, data.split()) if pid > 0]


def _kill_all(path: Path) -> None:
    try:
        _write(path / "cgroup.kill", "1")  # v2, Linux 5.14+: every process, no pid reuse race
        return
    except OSError:
        pass
    for pid in _pids(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _remove(path: Path) -> None:
    """Removes a task cgroup, killing what is still in it (an empty one, the usual case once
    the task's processes were ended, costs one rmdir)."""
    deadline = time.monotonic() + REMOVE_WAIT
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                _log.warning(
                    "could not remove a task cgroup",
                    extra={"kv": {"path": str(path), "error": error.strerror}},
                )
                return
        _kill_all(path)
        time.sleep(0.005)  # the killed processes are exiting


class Manager:
    """Makes task cgroups following a `Plan`."""

    def __init__(self, plan: Plan, prefix: str, *, life: procs.Life | None = None) -> None:
        """`life`: the worker process whose task cgroups these are (default: this one)."""
        self.plan = plan
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", prefix)
        if safe != prefix:  # "a/b" and "a_b" must not share (and sweep) each other's cgroups
            safe = f"{safe}-{_digest(prefix)}"
        if len(safe) > PREFIX_MAX:
            safe = f"{safe[: PREFIX_MAX - 17]}-{_digest(prefix)}"
        self._prefix = safe
        self.life = life if life is not None else procs.Life.current()
        self._spares: spares.Spares[TaskCgroup] = spares.Spares(SPARES)

    def _name(self, task: str) -> str:
        """A task's cgroup name: "<prefix>@<life>@<task>", or, too long for a directory name,
        with a digest of it in place of its end (names stay distinct; "@" is never in the
        prefix, so a sweep matches this worker's alone)."""
        name = f"{self._prefix}@{self.life}@{task}"
        if len(name) <= NAME_MAX:
            return name
        return f"{name[: NAME_MAX - 17]}~{_digest(name)}"

    def _life_of(self, name: str) -> procs.Life | None:
        """The life a cgroup name of this prefix was made by; None for names without one."""
        life, sep, _ = name[len(self._prefix) + 1 :].partition("@")
        return procs.Life.parse(life) if sep else None

    def _grouped(self, pattern: str) -> list[TaskCgroup]:
        """The task cgroups whose names match `pattern`, a directory per hierarchy each."""
        found: dict[str, dict[str, tuple[Path, int]]] = {}
        for controller, (parent, version) in self.plan.parents.items():
            for path in parent.glob(pattern):
                if path.is_dir():
                    found.setdefault(path.name, {})[controller] = (path, version)
        return [TaskCgroup(dirs) for dirs in found.values()]

    def of_life(self, life: procs.Life) -> list[TaskCgroup]:
        """The task cgroups one life of this worker made."""
        return self._grouped(f"{self._prefix}@{life}@*")

    def leftovers(self) -> list[TaskCgroup]:
        """Task cgroups of this worker id that no running worker process owns: made by this
        life or by one that has ended (or by a version that did not name lives)."""
        left = []
        for cgroup in self._grouped(f"{self._prefix}@*"):
            name = next(iter(cgroup.dirs.values()))[0].name
            life = self._life_of(name)
            if life is None or life == self.life or not life.alive():
                left.append(cgroup)
        return left

    def probe(self, bash: str = "bash") -> str:
        """Why a task could not be moved into a cgroup of this plan ("" if it can): a test
        cgroup with both limits set (the files the launcher and `create` write), which bash
        joins with the join prefix (the same write to cgroup.procs the task launcher makes).
        One bash, no interpreter: it runs at every worker's start. Runs before the worker's
        reaper starts (its children are its own to wait for)."""
        try:
            cgroup = self.create("probe", memory_bytes=2**40, processes=2**20)
        except CgroupError as error:
            return str(error)
        argv = [bash, "-c", join_prefix(cgroup.join_files) + "true"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        finally:
            cgroup.remove()
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["no error output"]
            return f"a process cannot join a task cgroup: {lines[-1]}"
        return ""

    def controllers(self) -> frozenset[str]:
        return frozenset(self.plan.parents)

    def sweep(self) -> int:
        """Removes the task cgroups earlier, ended runs of this worker's id left (`leftovers`;
        killed with -9, their tasks' processes may live on in them: they are killed). Returns
        how many."""
        left = self.leftovers()
        for cgroup in left:
            cgroup.remove()
        return len(left)

    def create(self, name: str, *, memory_bytes: int, processes: int) -> TaskCgroup:
        """A cgroup for one task with these limits (0: not limited here; with neither, one
        directory to track the task's processes in); CgroupError if any part of it cannot be
        made (what was made is removed)."""
        tracking = not memory_bytes and not processes
        if tracking and (spare := self._spares.take()) is not None:
            return spare
        wanted = {MEMORY: memory_bytes, PIDS: processes}
        dirs: dict[str, tuple[Path, int]] = {}
        for controller, (parent, version) in self.plan.parents.items():
            if wanted.get(controller):
                dirs[controller] = (parent / self._name(name), version)
        if not dirs:
            controller = next(c for c in TRACKING if c in self.plan.parents)
            parent, version = self.plan.parents[controller]
            dirs[controller] = (parent / self._name(name), version)
        cgroup = TaskCgroup(dirs, tracking=tracking)
        try:
            for path in {path for path, _ in dirs.values()}:
                try:
                    path.mkdir()
                except FileExistsError:  # left by a crash: start from an empty one
                    _remove(path)
                    path.mkdir()
            for controller, (path, version) in dirs.items():
                if not wanted[controller]:
                    continue  # tracked, not limited
                for file, value in _limit_files(controller, version, wanted[controller]):
                    with contextlib.suppress(FileNotFoundError):  # optional files (swap)
                        _write(path / file, value)
        except OSError as error:
            cgroup.remove()
            raise CgroupError(error.errno, f"cannot set up task cgroup: {error}") from error
        return cgroup

    def done(self, cgroup: TaskCgroup) -> None:
        """Done with a task's cgroup, once the task's processes were ended: kept as a spare if
        another task may have it as if new (no limits, no process left, no cgroup made in it,
        event counters at zero), else removed."""
        if (
            cgroup.tracking
            and not cgroup.members()
            and not cgroup.has_children()
            and not cgroup.hit()
            and self._spares.keep(cgroup)
        ):
            return
        cgroup.remove()

    def close(self) -> None:
        """Removes the spares; cgroups done with later are removed."""
        for spare in self._spares.close():
            spare.remove()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _limit_files(controller: str, version: int, value: int) -> Iterator[tuple[str, str]]:
    if controller == PIDS:
        yield "pids.max", str(value)
    elif version == 2:
        yield "memory.max", str(value)
        yield "memory.swap.max", "0"  # the limit is memory, not memory plus swap
    else:
        yield "memory.limit_in_bytes", str(value)
        yield "memory.memsw.limit_in_bytes", str(value)
