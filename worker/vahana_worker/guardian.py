"""The guardian: a small process that ends a worker's tasks when the worker dies, however it dies.

A worker killed with -9 (or by the OOM killer, or a crash) cannot end its tasks' processes; a
process group or a cgroup does not end by itself, and a parent-death signal reaches only the
process it was set on. So each worker that is not PID 1 (when PID 1 dies the kernel ends its
whole PID namespace) starts a guardian, a single-threaded Python process with nothing but the
standard library and this package's /proc and cgroup code loaded. It holds the read end of a
pipe whose write end only the worker holds; when the worker exits, in any way, the pipe reads
end-of-file and the guardian ends every process of that worker life's tasks: those in its task
cgroups (which it removes) and those carrying its marker (`taskprocs.end_life`). Then it exits.

The guardian runs in a session of its own, so a signal to the worker's process group or terminal
does not end it first, ignores SIGINT and SIGHUP for the same reason, and gets an empty
environment: unlike the worker it can be read by its user's processes, tasks included, and must
hold no secret. On a clean shutdown it finds nothing left to end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import vahana_worker
from vahana_worker import cgroups, logs, procs, reaper, taskprocs

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
            [sys.executable, "-I", "-S", "-c", _boot(), charge.to_json()],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=None,  # its few lines go to the worker's log stream
            cwd="/",
            env={},
            start_new_session=True,
        )
        own(process.pid)
    return process


def main(argv: Sequence[str]) -> None:
    """The guardian process: waits for its worker to go, then ends what it left."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    charge = Charge.from_json(argv[0])
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
