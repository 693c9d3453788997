"""The guardian: a small process that ends a worker's tasks when the worker dies, however it dies.

A worker killed with -9 (or by the OOM killer, or a crash) cannot end its tasks' processes; a
process group or a cgroup does not end by itself, and a parent-death signal reaches only the
process it was set on. So each worker that is not PID 1 (when PID 1 dies the kernel ends its
whole PID namespace) has a guardian, a single-threaded Python process (a new interpreter with
only the standard library and this package's /proc and cgroup code loaded, or a fork of the
zygote, which has the worker loaded). It holds the read end of a
pipe whose write end only the worker holds; when the worker exits, in any way, the pipe reads
end-of-file and the guardian ends every process of that worker life's tasks: those in its task
cgroups (which it removes) and those carrying its marker (`taskprocs.end_life`). Then it exits.

The worker writes what to guard (its `Charge`, one JSON line) into the pipe once it knows it,
then holds the pipe until it exits. A worker started on its own starts its guardian with `start`
(a new interpreter, ~60 ms of CPU); a local pool's zygote, which has this package imported
already, forks one beside each worker it forks (`fork_beside`) and leaves it to the worker
(`take_forked`), so four workers starting at once do not cost four interpreters.

The guardian runs in a session of its own, so a signal to the worker's process group or terminal
does not end it first, and ignores SIGINT and SIGHUP for the same reason. It runs as the tasks'
user may: a started one gets an empty environment and holds no secret; a forked one has a copy
of the zygote's memory (the workers' environments it was sent) and, like the zygote, is not
dumpable, so its /proc entries (environ, mem) are root's, not readable by tasks. On a clean
shutdown it finds nothing left to end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import vahana_worker
from vahana_worker import cgroups, linux, logs, procs, reaper, taskprocs

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Charge:
    """What a guardian guards: one worker life, its task cgroups' parents and prefix."""

    worker_id: str
    life: procs.Life
    grace: float
    cgroup_parents: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)
    """{controller: (directory, version)} of the worker's cgroup plan; empty: none."""
    cgroup_prefix: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "worker_id": self.worker_id,
                "life": str(self.life),
                "grace": self.grace,
                "cgroup_parents": self.cgroup_parents,
                "cgroup_prefix": self.cgroup_prefix,
            }
        )

    def line(self) -> bytes:
        """What the worker writes into its guardian's pipe, first: the charge, one line."""
        return self.to_json().encode() + b"\n"

    @classmethod
    def from_json(cls, text: str) -> Charge:
        data = json.loads(text)
        life = procs.Life.parse(data["life"])
        if life is None:
            raise ValueError(f"not a worker life: {data['life']!r}")
        return cls(
            worker_id=data["worker_id"],
            life=life,
            grace=float(data["grace"]),
            cgroup_parents={k: (str(v[0]), int(v[1])) for k, v in data["cgroup_parents"].items()},
            cgroup_prefix=data["cgroup_prefix"],
        )

    def task_cgroups(self) -> list[cgroups.TaskCgroup]:
        """The task cgroups of this life that exist now."""
        if not self.cgroup_parents:
            return []
        plan = cgroups.Plan({k: (Path(p), v) for k, (p, v) in self.cgroup_parents.items()})
        return cgroups.Manager(plan, self.cgroup_prefix, life=self.life).of_life(self.life)


def _boot() -> str:
    """The guardian's `-c` program: this package from where the worker loaded it (a venv's
    site-packages, shiv's extraction of the zipapp, or the zipapp itself)."""
    package_parent = str(Path(vahana_worker.__file__).resolve().parent.parent)
    return (
        f"import sys; sys.path.insert(0, {package_parent!r}); "
        "from vahana_worker import guardian; guardian.main(sys.argv[1:])"
    )


def start(charge: Charge, orphans: reaper.Reaper) -> subprocess.Popen[bytes]:
    """Starts the guardian of this worker life; it runs until this process exits."""
    with orphans.spawning() as own:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _boot()],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=None,  # its few lines go to the worker's log stream
            cwd="/",
            env={},
            start_new_session=True,
        )
        own(process.pid)
    assert process.stdin is not None
    try:
        process.stdin.write(charge.line())
        process.stdin.flush()
    except OSError:
        process.kill()
        process.wait()
        orphans.release(process.pid)  # reaped here: the pid may be reused
        raise
    return process


@dataclasses.dataclass
class Forked:
    """A guardian forked beside this worker (by the zygote): its pid and the pipe's write end."""

    pid: int
    fd: int

    def give(self, charge: Charge) -> None:
        """Tells the guardian what to guard; OSError if it has gone."""
        os.write(self.fd, charge.line())


_forked: Forked | None = None


def take_forked() -> Forked | None:
    """The guardian forked beside this process, if it was (once: the next call says None)."""
    global _forked
    forked, _forked = _forked, None
    return forked


def fork_beside(title: str, log_fd: int, drop: Callable[[], None]) -> tuple[int, int]:
    """In a process with this package loaded (the zygote), before it forks a worker: forks a
    guardian that waits on a new pipe, its output to `log_fd`, after `drop` has let go of the
    forking process's own plumbing in it. Returns its pid and the pipe's write end, for the
    worker (`set_forked` in it) and nobody else: the caller closes its copy once the worker is
    forked."""
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:
        code = 1
        try:
            linux.protect_secrets()  # inherited from the zygote already; first, in any case
            drop()
            os.close(write_fd)
            os.setsid()
            os.dup2(read_fd, 0)
            os.close(read_fd)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.close(null)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            os.chdir("/")
            os.environ.clear()
            import setproctitle  # the zygote's dependency, loaded there already

            setproctitle.setproctitle(title)
            main([])
            code = 0
        except BaseException:  # noqa: BLE001 - said in the log; the process ends either way
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(read_fd)
    return pid, write_fd


def set_forked(pid: int, fd: int) -> None:
    """In the forked worker: the guardian `fork_beside` made for it, for `take_forked`."""
    global _forked
    _forked = Forked(pid, fd)


def _read_charge(fd: int) -> Charge | None:
    """The charge line the worker writes first; None if the pipe closed before one came (the
    worker ended before it had anything to guard)."""
    data = b""
    while b"\n" not in data:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return Charge.from_json(data.split(b"\n", 1)[0].decode())


def main(argv: Sequence[str]) -> None:
    """The guardian process: reads its charge from stdin, waits for its worker to go (stdin
    ends), then ends what it left."""
    del argv  # the charge comes on stdin, where the worker can write it once it knows it
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    charge = _read_charge(0)
    if charge is None:
        return
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    logs.setup("info", charge.worker_id)
    count = taskprocs.end_life(
        worker_id=charge.worker_id,
        life=charge.life,
        task_cgroups=charge.task_cgroups(),
        grace=charge.grace,
    )
    if count:
        _log.warning(
            "worker gone; ended what its tasks left running",
            extra={"kv": {"life": str(charge.life), "processes": count}},
        )
