"""Custody of the worker's processes: what the worker sets up so that no process and no zombie
outlives its task, and nothing of its tasks outlives the worker.

At start (`take`), in this order:
1. orphans come to the worker (`reaper`: it is PID 1, or becomes a child subreaper) — before
   any task starts, since only processes forked after it inherit the subreaper's claim;
2. task cgroups, where the worker may make them (`cgroups`): their plan, what earlier lives of
   this worker id left in theirs ended, a probe that a process can join one;
3. what earlier, dead lives of this worker id left outside cgroups ended (`taskprocs`, by their
   marker);
4. the guardian (`guardian`), unless the worker is PID 1 (its container ends with it): the one
   the zygote forked beside it, or a new one;
5. the reaper's thread, woken by SIGCHLD. The cgroup probe's children are waited for by then.
On shutdown (`release`) the spare task cgroups are removed, the strays still running are ended
and the reaper stops.

Steps 1, 3, 4 and 5 act on the whole process, so they are taken only when the worker owns it:
when `run()` is called from the main thread, as the command line does. A worker run from
another thread (embedded, as in tests) leaves the process's children alone and finds its tasks'
processes by cgroup or by scanning /proc.
"""

from __future__ import annotations

import logging
import subprocess
import threading

from vahana_worker import cgroups, executor, guardian, procs, reaper, settings, taskprocs

_log = logging.getLogger(__name__)


def _ev(msg: str, *, level: int = logging.INFO, **fields: object) -> None:
    _log.log(level, msg, extra={"kv": fields})


class Custody:
    """The worker's reaper, task cgroups and guardian."""

    def __init__(self, config: settings.Settings) -> None:
        self._config = config
        self.life = procs.Life.current()
        self.orphans = reaper.Reaper(
            worker_id=config.worker_id, life=self.life, grace=config.kill_grace
        )
        self.cgroups: cgroups.Manager | None = None
        """Where task cgroups go; None: the tasks' processes are found by their marker."""
        self._guardian: subprocess.Popen[bytes] | guardian.Forked | None = None
        """Kept referenced: the guardian's pipe must close only when this process exits."""
        self._owner = False
        """The worker owns its process (runs on the main thread): it may act on all of it."""

    @property
    def _prefix(self) -> str:
        return f"vahana-{self._config.worker_id}"

    def take(self) -> bool:
        """Sets it all up; False if the --cgroup-root the user gave cannot be used."""
        self._owner = threading.current_thread() is threading.main_thread()
        mode = self.orphans.adopt_orphans() if self._owner else reaper.NONE
        if self._config.cgroups != "off" and not self._set_up_cgroups():
            return False
        ended = 0
        if self._owner:
            ended = taskprocs.end_earlier_lives(
                worker_id=self._config.worker_id, life=self.life, grace=self._config.kill_grace
            )
            if mode != reaper.INIT:
                self._start_guardian()
            self.orphans.watch_sigchld()
            self.orphans.start()
        else:
            _ev("not the main thread: the process's orphans, signals and guardian left alone")
        _ev(
            "orphans",
            reaper=mode,
            life=str(self.life),
            guardian=self._guardian.pid if self._guardian is not None else None,
            left_by_an_earlier_run=ended or None,
        )
        return True

    def _set_up_cgroups(self) -> bool:
        """Finds where task cgroups go and checks a process can join one; False if the
        --cgroup-root the user gave cannot be used (else the marker and setrlimit stand in,
        said in the log). Ends what earlier lives of this worker id left in theirs."""
        plan, why = cgroups.discover(root=self._config.cgroup_root)
        if plan is not None:
            manager = cgroups.Manager(plan, prefix=self._prefix, life=self.life)
            left = manager.leftovers()
            ended = taskprocs.end_cgroups(left, self._config.kill_grace)
            why = manager.probe(executor.bash())
            if not why:
                self.cgroups = manager
                _ev(
                    "task cgroups",
                    where=plan.describe(),
                    left_by_an_earlier_run=len(left) or None,
                    processes_ended=ended or None,
                )
                return True
        if self._config.cgroup_root:
            _ev("cannot use --cgroup-root", level=logging.ERROR, reason=why)
            return False
        _ev(
            "no task cgroups: tasks' processes are found by their marker, memory and process "
            "limits use setrlimit",
            reason=why,
        )
        return True

    def _start_guardian(self) -> None:
        plan = self.cgroups.plan.parents if self.cgroups is not None else {}
        charge = guardian.Charge(
            worker_id=self._config.worker_id,
            life=self.life,
            grace=self._config.kill_grace,
            cgroup_parents={name: (str(path), version) for name, (path, version) in plan.items()},
            cgroup_prefix=self._prefix,
        )
        forked = guardian.take_forked()
        try:
            if forked is not None:
                forked.give(charge)
                self._guardian = forked
            else:
                self._guardian = guardian.start(charge, self.orphans)
        except OSError as error:
            _ev(
                "no guardian: tasks may outlive a killed worker",
                level=logging.WARNING,
                error=str(error),
            )

    def release(self) -> None:
        """On shutdown, once the tasks have ended: removes the spare task cgroups, ends the
        strays still running, stops the reaper. The guardian stays until this process exits."""
        if self.cgroups is not None:
            self.cgroups.close()
        if not self._owner:
            return
        strays = self.orphans.end_all_strays(self._config.kill_grace)
        if strays:
            _ev("ended orphans left running", processes=strays)
        self.orphans.close()
