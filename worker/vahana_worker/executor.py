"""Runs one task attempt: sandbox, input staging, `bash -c` in its own process group (and its own
cgroup where the worker may make them) under the task's resource limits and with a clean
environment, output tail, timeout and cancellation, output collection, clean-up, and which limit
a failure hit.

However the task ends — its command exits, it times out, it is cancelled — every process it
started is ended with it, those that left its process group included (`taskprocs`): SIGTERM,
then SIGKILL after the kill grace. The task's result is reported after that.

This module knows nothing of gRPC: it takes a `TaskSpec` and returns a `Result`; `messages`
translates to and from the protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import logging
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from vahana_worker import (
    cgroups,
    limits,
    outputbuffer,
    procs,
    reaper,
    staging,
    storage,
    taskprocs,
)
from vahana_worker import sandboxes as sandboxes_module

_log = logging.getLogger(__name__)

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL to a task's processes."""

SPOOL_AFTER = 0.2
"""Seconds a task's first output may be held back from the spool (the sender's interval)."""
SPOOL_EARLY_BYTES = 64 << 10
"""Output held back at most before it goes to the spool."""

MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH of a task that declares none (the worker's --task-env may set another)."""


class Outcome(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class FailureKind(enum.Enum):
    NONE = "none"
    TASK_ERROR = "task_error"
    INFRASTRUCTURE = "infrastructure"
    STAGING = "staging"


class StopReason(enum.Enum):
    CANCELLED = "cancelled"  # the scheduler cancelled the task
    REVOKED = "revoked"  # the scheduler no longer knows the lease
    SHUTDOWN = "shutdown"  # the worker is going away


_STOP_RESULTS: dict[StopReason, tuple[Outcome, FailureKind, str]] = {
    StopReason.CANCELLED: (Outcome.CANCELLED, FailureKind.NONE, "cancelled by the scheduler"),
    StopReason.REVOKED: (Outcome.CANCELLED, FailureKind.NONE, "lease revoked by the scheduler"),
    StopReason.SHUTDOWN: (Outcome.FAILED, FailureKind.INFRASTRUCTURE, "worker shutting down"),
}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What to run: the protocol's Task reduced to what the executor needs."""

    task_id: str
    attempt: int
    command: str
    timeout: float
    """Seconds before the task is killed and reported TIMED_OUT."""
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    inputs: Sequence[tuple[str, str]] = ()
    """(source, sandbox-relative destination) pairs."""
    outputs: Sequence[tuple[str, str]] = ()
    """(sandbox-relative source, destination) pairs."""
    limits: limits.Limits = dataclasses.field(default_factory=limits.Limits)
    """The limits that apply (the task's, with the worker's defaults filled in); 0: none."""


@dataclasses.dataclass(frozen=True)
class Result:
    outcome: Outcome
    exit_code: int = 0
    message: str = ""
    output_tail: str = ""
    failure_kind: FailureKind = FailureKind.NONE
    output_files: tuple[str, ...] = ()
    limit_hit: bool = False
    """The task failed on one of its limits (the message says which)."""
    output_log: str = ""
    """Where the whole output was kept in the pool's storage (`outputlog`), if it was."""


def _staging_kind(error: staging.StagingError) -> FailureKind:
    """A store that could not be reached is the infrastructure's failure (its own retry
    budget, maybe another worker); a missing or refused file is the task's."""
    return FailureKind.INFRASTRUCTURE if error.infrastructure else FailureKind.STAGING


def sandbox_name(task_id: str, attempt: int) -> str:
    """Directory name of a task attempt's sandbox: the id made filesystem-safe, plus the attempt."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id).lstrip(".") or "task"
    return f"{safe[:200]}-a{attempt}"


def task_environment(
    base: Mapping[str, str],
    task_env: Mapping[str, str],
    *,
    sandbox: str | Path,
    task_id: str,
    marker: procs.Marker | None = None,
) -> dict[str, str]:
    """The whole environment a task's command sees, never the worker's own (which may hold
    tokens, SERVER_ADDRESS or cloud credentials): a minimal PATH, HOME (the sandbox), LANG and
    TMPDIR (sandbox/tmp); then `base`, the variables the worker gives every task (--task-env);
    then what the task declares; then WORKING_DIR, TASK_ID and VAHANA_TASK (the marker by which
    the worker finds the task's processes), which nothing overrides.
    """
    home = os.fspath(sandbox)
    env = {
        "PATH": MINIMAL_PATH,
        "HOME": home,
        "LANG": "C.UTF-8",
        "TMPDIR": os.path.join(home, "tmp"),
    }
    env.update(base)
    env.update(task_env)
    env["WORKING_DIR"] = home
    env["TASK_ID"] = task_id
    if marker is not None:
        env[procs.MARKER] = str(marker)
    return env


def exit_code_of(returncode: int) -> int:
    """Shell convention: a process killed by signal N exits with 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Gives the sandbox (staged inputs included) to the task's user; symlinks are not followed."""
    os.chown(root, uid, gid)
    for parent, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.chown(os.path.join(parent, name), uid, gid, follow_symlinks=False)


@functools.cache
def _own_life() -> procs.Life:
    return procs.Life.current()


def _not_started(error: OSError) -> Result:
    return Result(
        Outcome.FAILED, 127, f"could not start bash: {error}", "", FailureKind.INFRASTRUCTURE
    )


@functools.cache
def bash() -> str:
    """bash's path on the worker's PATH (looked up once: a lookup per task was measurable)."""
    return shutil.which("bash") or "/bin/bash"


class Janitor:
    """Removes finished tasks' sandboxes and cgroups on a thread of its own.

    An `rmdir` on this ext4 waits 2–4 ms for the journal (0.1 ms of CPU): done on the task's
    thread, it held the slot and the task's result that long, a third of the time a `true` task
    took. The thread works in rounds at most every `gap` seconds, so that short tasks ending
    one after another wake it once per round, not once each. `close()` waits for what is
    queued, so nothing is left behind when the worker exits.
    """

    def __init__(self, gap: float = 0.05) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._gap = gap
        self._closing = threading.Event()

    def remove(self, work: Callable[[], None]) -> None:
        """Runs `work` soon on the janitor's thread (at once, here, once closed)."""
        with self._lock:
            if not self._closed:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._serve, name="janitor", daemon=True)
                    self._thread.start()
                self._queue.put(work)
                return
        work()

    def close(self, timeout: float = 30.0) -> None:
        """Waits up to `timeout` s for the queued removals; later ones run where they are asked."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            self._closing.set()
            thread.join(timeout)

    def _serve(self) -> None:
        while True:
            work = self._queue.get()
            while work is not None:
                try:
                    work()
                except Exception:  # one sandbox that cannot go must not stop the others'
                    _log.exception("could not clean up after a task")
                try:
                    work = self._queue.get_nowait()
                except queue.Empty:
                    break
            if work is None:
                return
            self._closing.wait(self._gap)  # the next round; close() cuts it short


class _Waker:
    """A file descriptor that becomes readable when `wake()` is called, from any thread."""

    def __init__(self) -> None:
        if hasattr(os, "eventfd"):
            self.fd = self._write_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:
            self.fd, self._write_fd = os.pipe()
            os.set_blocking(self.fd, False)
        # A late wake() must never write to a closed descriptor: its number may be reused.
        self._lock = threading.Lock()
        self._closed = False

    def wake(self) -> None:
        with self._lock:
            if not self._closed:
                with contextlib.suppress(BlockingIOError):  # already readable
                    os.write(self._write_fd, (1).to_bytes(8, "little"))

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 4096)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self.fd)
            if self._write_fd != self.fd:
                os.close(self._write_fd)


def _exit_fd(proc: subprocess.Popen[bytes], waker: _Waker, exited: threading.Event) -> int:
    """A descriptor readable once `proc` has exited: its pidfd (Linux 5.3+). Elsewhere -1, and
    a thread waiting for the process sets `exited` and wakes the waker. Neither reaps it: until
    `Popen.wait()`, its pid (and so its process group id) cannot go to another process."""
    try:
        return os.pidfd_open(proc.pid)
    except (AttributeError, OSError):

        def wait() -> None:
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            exited.set()
            waker.wake()

        threading.Thread(target=wait, daemon=True, name=f"wait-{proc.pid}").start()
        return -1


class TaskRun:
    """One attempt of one task: `run()` blocks until it is over; `stop()` works from any thread."""

    def __init__(
        self,
        spec: TaskSpec,
        *,
        working_dir: Path,
        output_limit: int,
        keep_sandbox: bool = False,
        kill_grace: float = KILL_GRACE,
        base_env: Mapping[str, str] | None = None,
        output_root: Path | None = None,
        user: tuple[int, int] | None = None,
        cgroup_manager: cgroups.Manager | None = None,
        orphans: reaper.Reaper | None = None,
        worker_id: str = "",
        stores: storage.StorageConfig | None = None,
        spool: Path | None = None,
        spool_limit: int = 64 << 20,
        clock: Callable[[], float] = time.monotonic,
        janitor: Janitor | None = None,
        sandboxes: sandboxes_module.Sandboxes | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        """`base_env`: variables every task gets (--task-env); `output_root`: the directory
        output destinations must lie in (default `<working_dir>/outputs`); `user`: (uid, gid)
        the command runs as (needs root; default: the worker's own), owning the sandbox;
        `cgroup_manager`: where the task's cgroup goes, if the worker may make them;
        `orphans`: the worker's reaper (its children are started through it, and the task's
        orphans are found among its strays; without one, in all of /proc); `worker_id` and
        the reaper's life (default: this process's) go into the task's marker; `janitor`:
        where the sandbox and cgroup are removed once `run()` returns (default: in `run()`);
        `sandboxes`: where its sandbox is made and removed (the worker's, which keeps emptied
        ones for the next tasks; default: made and removed here); `stores`: how the worker
        reaches s3:// and sftp:// inputs and outputs; `spool`: a file (outside the sandbox)
        that receives the task's whole output as it comes, up to
        `spool_limit` bytes, for the worker to send on while the task runs; `on_start`: called
        once the task's process has started."""
        self.spec = spec
        self.sandbox_name = sandbox_name(spec.task_id, spec.attempt)
        # Paths as text on the way of every task: pathlib's joins were a tenth of the
        # worker's CPU for a `true` task.
        self._sandbox = os.path.join(working_dir, "tasks", self.sandbox_name)
        self._working_dir = working_dir
        self._output_root = output_root
        self._sandboxes = (
            sandboxes
            if sandboxes is not None
            else sandboxes_module.Sandboxes(os.path.join(working_dir, "tasks"), limit=0)
        )
        self._output = outputbuffer.TailBuffer(output_limit)
        self._tail_limit = output_limit
        self._keep_sandbox = keep_sandbox
        self._janitor = janitor
        self._kill_grace = kill_grace
        self._base_env = base_env
        self._user = user
        self._cgroups = cgroup_manager
        self._orphans = orphans
        self._stores = stores
        self._spool_path = spool
        self._spool_room = spool_limit
        self._spool: BinaryIO | None = None
        self._early = bytearray()
        """Output held back from the spool while the task is young and its output short: a
        task that ends within SPOOL_AFTER with little output never makes a file (its
        result's tail is all of it)."""
        self._spool_at = 0.0
        """When the held-back output must go to the spool (clock time); 0: nothing held."""
        self.marker = procs.Marker(
            worker_id, orphans.life if orphans is not None else _own_life(), self.sandbox_name
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._waker: _Waker | None = None
        self._stop_reason: StopReason | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cgroup: cgroups.TaskCgroup | None = None
        self._fields = {"task_id": spec.task_id, "attempt": spec.attempt}
        self._on_start = on_start

    @property
    def sandbox(self) -> Path:
        """The attempt's sandbox directory (HOME and WORKING_DIR of its command)."""
        return Path(self._sandbox)

    @property
    def output_root(self) -> Path:
        """The directory output destinations must lie in (default `<working_dir>/outputs`)."""
        root = self._output_root
        return Path(self._working_dir, "outputs") if root is None else root

    @property
    def pid(self) -> int | None:
        """The pid (and process group id) of the task's bash, once started."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def stop(self, reason: StopReason) -> None:
        """Asks the run to end: its process group is killed and the result says why."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            if self._waker is not None:
                self._waker.wake()

    def run(self) -> Result:
        """Stages, runs and collects the task; never raises for task-level problems."""
        try:
            return self._run()
        finally:
            if self._early and self._output.total_bytes > self._tail_limit:
                self._to_spool(b"")  # the result's tail will not hold all of it
            if self._spool is not None:
                self._spool.close()
            if self._janitor is None:
                self._clean_up()
            else:
                self._janitor.remove(self._clean_up)

    def _clean_up(self) -> None:
        if self._cgroup is not None and self._cgroups is not None:
            self._cgroups.done(self._cgroup)
        if not self._keep_sandbox:
            self._sandboxes.remove(self._sandbox)

    def _split_limits(self) -> limits.Limits:
        """Makes the task's cgroup (every task gets one where the worker may make them: it
        tracks all of the task's processes), with the limits a cgroup can take; returns the
        rest, for setrlimit (all of them if there is no cgroup)."""
        wanted = self.spec.limits
        if self._cgroups is None:
            return wanted
        taken = self._cgroups.controllers()
        memory = wanted.memory_bytes if cgroups.MEMORY in taken else 0
        processes = wanted.processes if cgroups.PIDS in taken else 0
        try:
            self._cgroup = self._cgroups.create(
                self.sandbox_name, memory_bytes=memory, processes=processes
            )
        except cgroups.CgroupError as error:
            _log.warning(
                "no cgroup for the task; its processes are found by their marker, its memory "
                "and process limits use setrlimit",
                extra={"kv": {**self._fields, "error": str(error)}},
            )
            return wanted
        if not memory and not processes:
            return wanted
        return dataclasses.replace(
            wanted,
            memory_bytes=0 if memory else wanted.memory_bytes,
            processes=0 if processes else wanted.processes,
        )

    def _command_line(self, rlimits: limits.Limits) -> list[str]:
        """bash -c <command>; in the limits launcher if setrlimit or another user is needed
        (it joins the cgroup too, and dies with the worker's thread); else, with a cgroup, bash
        joins it itself (no interpreter to start)."""
        argv = [bash(), "-c", self.spec.command]
        join_files = self._cgroup.join_files if self._cgroup is not None else []
        if rlimits.any or self._user is not None:
            return limits.command_line(
                argv, rlimits, user=self._user, cgroup_joins=join_files, parent=os.getpid()
            )
        if join_files:
            return [bash(), "-c", cgroups.join_prefix(join_files) + self.spec.command]
        return argv

    @contextlib.contextmanager
    def _spawning(self) -> Iterator[Callable[[int], None]]:
        if self._orphans is None:
            yield lambda pid: None
        else:
            with self._orphans.spawning(self.sandbox_name) as own:
                yield own

    def _keep(self, chunk: bytes) -> None:
        """A read of the task's output: into the tail, and (held back while short and young)
        into the spool while it has room."""
        self._output.write(chunk)
        if self._spool_path is None or self._spool_room <= 0:
            return
        if self._spool is None and len(self._early) + len(chunk) <= SPOOL_EARLY_BYTES:
            if not self._early:
                self._spool_at = self._clock() + SPOOL_AFTER
            self._early += chunk
            return
        self._to_spool(chunk)

    def _spool_due(self) -> float:
        """Seconds until held-back output must reach the spool (a follower waits for it)."""
        return max(0.0, self._spool_at - self._clock()) if self._early else float("inf")

    def _flush_early(self) -> None:
        if self._early and self._clock() >= self._spool_at:
            self._to_spool(b"")

    def _to_spool(self, chunk: bytes) -> None:
        if self._spool is None:
            assert self._spool_path is not None
            try:
                self._spool_path.parent.mkdir(parents=True, exist_ok=True)
                self._spool = open(self._spool_path, "wb")  # noqa: SIM115 - closed after the run
            except OSError as error:  # costs the followers, not the task
                _log.warning("no output spool", extra={"kv": {"error": str(error)}})
                self._spool_room = 0
                return
        data = bytes(self._early) + chunk if self._early else chunk
        self._early.clear()
        self._spool_at = 0.0
        piece = data[: self._spool_room]
        self._spool_room -= len(piece)
        try:
            self._spool.write(piece)
            self._spool.flush()  # the sender reads the file, not this buffer
        except OSError as error:  # a full disk costs the followers, not the task
            _log.warning("output spool failed", extra={"kv": {"error": str(error)}})
            self._spool_room = 0

    def _stopped_result(self, reason: StopReason, exit_code: int = 0) -> Result:
        outcome, kind, message = _STOP_RESULTS[reason]
        return Result(outcome, exit_code, message, self._output.text(), kind)

    def _run(self) -> Result:
        sandbox = self._sandbox
        self._sandboxes.make(sandbox)
        try:
            for source, destination in self.spec.inputs:
                staging.stage_input(
                    self.sandbox, source, destination, reader=self._user, stores=self._stores
                )
        except staging.StagingError as exc:
            return Result(Outcome.FAILED, 0, str(exc), "", _staging_kind(exc))
        if self._user is not None:
            _chown_tree(self.sandbox, *self._user)
        env = task_environment(
            {} if self._base_env is None else self._base_env,
            self.spec.environment,
            sandbox=sandbox,
            task_id=self.spec.task_id,
            marker=self.marker,
        )
        with self._lock:
            if self._stop_reason is not None:
                return self._stopped_result(self._stop_reason)
            try:
                waker = _Waker()
            except OSError as exc:
                return _not_started(exc)
            try:
                # No preexec_fn: the worker is multithreaded; limits are set by a launcher.
                command_line = self._command_line(self._split_limits())
                with self._spawning() as own:
                    proc = subprocess.Popen(
                        command_line,
                        cwd=sandbox,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                    own(proc.pid)
            except OSError as exc:
                waker.close()
                return _not_started(exc)
            self._proc = proc
            self._waker = waker
        if self._on_start is not None:
            self._on_start()
        _log.debug("task process started", extra={"kv": {**self._fields, "pid": proc.pid}})
        finder: taskprocs.Finder
        if self._cgroup is not None:
            finder = taskprocs.CgroupFinder(self._cgroup)
        else:
            assert proc.stdout is not None
            finder = taskprocs.MarkerFinder(
                main_pid=proc.pid,
                marker=self.marker,
                orphans=self._orphans,
                output_pipe=os.fstat(proc.stdout.fileno()).st_ino,
            )
        try:
            try:
                ended_by = _Supervision(self, proc, waker, finder).run()
            except BaseException:
                procs.kill_group(proc.pid, signal.SIGKILL)  # never leave a task running unwatched
                finder.signal(finder.find(), signal.SIGKILL)
                raise
            finally:
                with self._lock:
                    waker.close()
                    self._waker = None
            returncode = proc.wait()
        finally:
            if self._orphans is not None:
                self._orphans.release(proc.pid)  # only once reaped: the pid is not reused before
        code = exit_code_of(returncode)
        tail = self._output.text()
        if isinstance(ended_by, StopReason):
            return self._stopped_result(ended_by, code)
        if ended_by == "timeout":
            return Result(
                Outcome.TIMED_OUT,
                code,
                f"timed out after {self.spec.timeout:g}s; its processes were killed",
                tail,
                FailureKind.TASK_ERROR,
            )
        if code != 0:
            message = f"command exited with code {code}"
            cgroup_hit = self._cgroup.hit() if self._cgroup else frozenset()
            hit = limits.diagnose(code, tail, self.spec.limits, cgroup_hit)
            if hit is not None:
                message = f"{hit}: {message}"
                _log.info("task hit a limit", extra={"kv": {**self._fields, "limit": hit}})
            return Result(
                Outcome.FAILED, code, message, tail, FailureKind.TASK_ERROR, limit_hit=bool(hit)
            )
        try:
            collected = tuple(
                where
                for source, destination in self.spec.outputs
                for where in staging.collect_output(
                    self.sandbox,
                    source,
                    destination,
                    output_root=self.output_root,
                    stores=self._stores,
                )
            )
        except staging.StagingError as exc:
            return Result(Outcome.FAILED, 0, str(exc), tail, _staging_kind(exc))
        return Result(Outcome.COMPLETED, 0, "", tail, FailureKind.NONE, collected)


class _Supervision:
    """Watches one task process from the task's own thread: its output (kept in the tail
    buffer), its exit, a stop request and the timeout, all with one poll(); then ends what
    the task left running."""

    def __init__(
        self,
        run: TaskRun,
        proc: subprocess.Popen[bytes],
        waker: _Waker,
        finder: taskprocs.Finder,
    ) -> None:
        assert proc.stdout is not None
        self._run = run
        self._proc = proc
        self._waker = waker
        self._finder = finder
        self._termed_at: float | None = None
        self._poller = select.poll()
        self._output_fd = proc.stdout.fileno()
        self._exited_elsewhere = threading.Event()
        self._exit_fd = _exit_fd(proc, waker, self._exited_elsewhere)
        self.exited = False
        for fd in (self._output_fd, self._exit_fd, waker.fd):
            if fd >= 0:
                self._poller.register(fd, select.POLLIN)

    def run(self) -> StopReason | str:
        """How the process ended: "exited", "timeout" or the stop reason. Afterwards whatever
        the task left running is ended, and the output read to its end (or for at most 5 s)."""
        try:
            ended_by = self._watch()
            left = taskprocs.end(
                self._finder,
                pgid=self._proc.pid,
                grace=self._run._kill_grace,
                termed_at=self._termed_at,
                wait=lambda seconds: self._pump(
                    until=lambda: False, seconds=seconds, wakeable=False
                ),
            )
            if left:
                _log.info(
                    "ended what the task left running",
                    extra={"kv": {**self._run._fields, "processes": left}},
                )
            self._pump(until=lambda: self._output_fd < 0, seconds=5.0, wakeable=False)
            return ended_by
        finally:
            if self._exit_fd >= 0:
                os.close(self._exit_fd)
            assert self._proc.stdout is not None
            self._proc.stdout.close()

    def _watch(self) -> StopReason | str:
        run = self._run
        deadline = run._clock() + run.spec.timeout
        while True:
            self._pump(until=lambda: self.exited, seconds=max(0.0, deadline - run._clock()))
            if self.exited:
                return "exited"
            with run._lock:
                reason = run._stop_reason
            if reason is not None:
                self._terminate(why=reason.value)
                return reason
            if run._clock() >= deadline:
                self._terminate(why="timeout")
                return "timeout"

    def _terminate(self, *, why: str) -> None:
        _log.info("killing task processes", extra={"kv": {**self._run._fields, "why": why}})
        self._termed_at = time.monotonic()
        self._signal_all(signal.SIGTERM)
        self._pump(until=lambda: self.exited, seconds=self._run._kill_grace, wakeable=False)
        self._signal_all(signal.SIGKILL)

    def _signal_all(self, sig: int) -> None:
        """The task's process group, and its processes outside it."""
        procs.kill_group(self._proc.pid, sig)
        self._finder.signal(self._finder.find(), sig)

    def _pump(self, *, until: Callable[[], bool], seconds: float, wakeable: bool = True) -> None:
        """Reads output and notes the exit until `until()` holds, `seconds` pass, or (if
        `wakeable`) `TaskRun.stop()` wakes it."""
        end = time.monotonic() + seconds
        while not until():
            left = end - time.monotonic()
            if left <= 0:
                return
            woken = False
            # poll() takes at most 2**31 ms; a long timeout is waited for in steps. Held-back
            # output wakes it in time to reach the spool.
            wait = min(left, 3600.0, self._run._spool_due())
            for fd, _ in self._poller.poll(wait * 1000):
                if fd == self._output_fd:
                    self._read_output()
                elif fd == self._exit_fd:
                    self._note_exit()
                elif fd == self._waker.fd:
                    self._waker.clear()
                    woken = True
                    if self._exited_elsewhere.is_set():
                        self._note_exit()
            self._run._flush_early()
            if woken and wakeable:
                return

    def _read_output(self) -> None:
        try:
            chunk = os.read(self._output_fd, 65536)
        except OSError:
            chunk = b""
        if chunk:
            self._run._keep(chunk)
        else:  # end of output: every holder of the pipe has closed it
            self._poller.unregister(self._output_fd)
            self._output_fd = -1

    def _note_exit(self) -> None:
        self.exited = True
        if self._exit_fd >= 0:
            self._poller.unregister(self._exit_fd)
