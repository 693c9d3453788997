"""`python -m vahana_worker.zygote`: forks a local pool's workers from one process that has
already imported the worker, so that each new worker costs a fork instead of a Python start-up
and its imports (about a quarter of a second of CPU each).

It speaks JSON lines: a request on stdin per worker,

    {"argv": [...worker flags...], "env": {...}, "cwd": "...", "log": "path/to/worker.log",
     "start_wait": 0.5}

answered on stdout, in order, by `{"pid": N}` or `{"error": "why"}`; and whenever one of its
workers ends, `{"exited": N, "code": C}` (C negative for a signal, as `subprocess` has it).

Beside each worker it forks the worker's guardian first (`guardian.fork_beside`), which the
worker takes over instead of starting a new interpreter for it; the zygote reaps the guardians
and does not report them. Workers forked while the first of a start has not yet started a
task (or registered with nothing to run) wait for it before their own start-up
(`startgate`), at most "start_wait" seconds (optional; default `startgate.WAIT`).

Each worker is the same program as `python -m vahana_worker`: its own session, its output in
its log file, the environment it was given, and in `ps` the command line it would have had
(`vahana-worker --worker-id=... ...`), not the zygote's. The zygote leaves when stdin ends (the
scheduler closed it, or died) and gets SIGTERM if its parent dies; its workers, whose parent it
is, get their own SIGTERM then (`--exit-with-parent`) and drain.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import setproctitle

from vahana_worker import cli, guardian, linux, startgate

# grpc loads it with a process's first channel: else in each worker after its fork (8 ms). In
# a grpc where it moved, only the workers' start-up is slower.
with contextlib.suppress(ImportError):
    import grpc._channel  # noqa: F401

_Plumbing = tuple[selectors.BaseSelector, int, int]
"""The zygote's selector and wake-up pipe, which a forked worker closes."""

_guardians: set[int] = set()
"""The guardians forked beside the workers: reaped here, not reported."""

_gate: int | None = None
"""The read end of the start gate (`startgate`) that workers forked now wait on, until the
first worker forked with it has started a task."""
_gate_made_at = 0.0
"""When `_gate` was made (monotonic): one older than a worker's wait is not waited on."""


def main() -> None:
    # Its memory holds every worker's environment it is sent (secrets among them), and so do
    # its forks: not readable by the tasks' processes of the same user. Inherited by each fork
    # until it execs.
    linux.protect_secrets()
    parent = os.environ.get(linux.PARENT_PID_ENV, "")
    linux.exit_with_parent(parent=int(parent) if parent.isdigit() else None)
    # setproctitle finds the command line's memory on first use, by the interpreter's own
    # sys.argv: here, once, before a worker changes it.
    setproctitle.getproctitle()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wake-up fd does the work
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.fd == wake_r:
                os.read(wake_r, 4096)
                _reap()
                continue
            data = os.read(0, 65536)
            if not data:
                _reap()
                # Nothing to tidy: the interpreter's teardown (gRPC's, every module's) would
                # add a tenth of a second to the end of every run.
                os._exit(0)
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    _say(_fork(json.loads(line), (selector, wake_r, wake_w)))


def _say(message: Mapping[str, Any]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in _guardians:  # the workers' guardians are its own business
            _guardians.discard(pid)
            continue
        _say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _fork(request: Mapping[str, Any], own: _Plumbing) -> dict[str, Any]:
    try:
        argv = [str(a) for a in request["argv"]]
        env = {str(k): str(v) for k, v in request["env"].items()}
        env[linux.PARENT_PID_ENV] = str(os.getpid())  # the worker's parent is this process
        start_wait = float(request.get("start_wait", startgate.WAIT))
        if not 0 <= start_wait <= 3600:  # NaN included
            raise ValueError(f"start_wait must be 0–3600 seconds, not {start_wait}")
        log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except (KeyError, TypeError, AttributeError, ValueError, OSError) as error:
        return {"error": f"bad request: {error!r}"}
    try:
        guardian_pid, guardian_fd = guardian.fork_beside(
            _guardian_title(argv), log_fd, lambda: _drop_plumbing(own)
        )
    except OSError as error:
        os.close(log_fd)
        return {"error": f"fork: {error}"}
    _guardians.add(guardian_pid)
    held = _gate_for_next(start_wait)
    try:
        pid = os.fork()
    except OSError as error:
        os.close(log_fd)
        os.close(guardian_fd)  # the guardian reads the end of its pipe and leaves
        if held is not None:
            os.close(held)  # the gate opens: nobody waits for a worker that is not there
        return {"error": f"fork: {error}"}
    if pid == 0:
        guardian.set_forked(guardian_pid, guardian_fd)
        _become_worker(argv, env, request.get("cwd"), log_fd, own, _Turn(held, start_wait))
    os.close(log_fd)
    os.close(guardian_fd)
    if held is not None:
        os.close(held)  # the worker's copy is the one that opens the gate
    return {"pid": pid}


def _gate_for_next(wait: float) -> int | None:
    """Before a worker is forked: a new start gate unless one is closed and younger than
    `wait`, returning its write end for that worker to hold; else None (the worker waits on
    `_gate`, or on nothing if no pipe could be made)."""
    global _gate, _gate_made_at
    if _gate is not None and (startgate.is_open(_gate) or time.monotonic() - _gate_made_at > wait):
        os.close(_gate)  # opened, or its first worker idles (no task yet): a new start
        _gate = None
    if _gate is not None:
        return None
    try:
        _gate, held = os.pipe()
    except OSError:  # no descriptor to spare: this start is not staggered
        return None
    _gate_made_at = time.monotonic()
    return held


class _Turn:
    """A forked worker's place at the start gate: the gate's write end to hold (the first
    worker), or the zygote's read end to wait on for at most `wait` seconds (the others)."""

    def __init__(self, held: int | None, wait: float) -> None:
        global _gate
        self._held = held
        self._wait = wait
        self._gate: int | None = None
        if held is None:
            # Taken from the zygote's plumbing, which the worker drops before it waits.
            self._gate, _gate = _gate, None

    def take(self) -> None:
        if self._held is not None:
            startgate.hold(self._held)
        elif self._gate is not None:
            startgate.wait_turn(self._gate, self._wait)


def _guardian_title(argv: Sequence[str]) -> str:
    """`vahana-worker-guardian --worker-id=ID` in ps: whose guardian it is."""
    ids = [arg for arg in argv if arg.startswith("--worker-id=")]
    return shlex.join(["vahana-worker-guardian", *ids[-1:]])


def _drop_plumbing(own: _Plumbing) -> None:
    """In a forked child: lets go of the zygote's selector, wake-up pipe and SIGCHLD handler."""
    selector, wake_r, wake_w = own
    global _gate
    selector.close()
    if _gate is not None:
        os.close(_gate)
        _gate = None
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(wake_r)
    os.close(wake_w)


def _become_worker(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    log_fd: int,
    own: _Plumbing,
    turn: _Turn,
) -> None:
    """In the forked child: drops the zygote's plumbing, takes its turn at the start gate,
    then runs the worker; never returns."""
    code = 1
    try:
        _drop_plumbing(own)
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        if cwd:
            os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        # Without it every worker shows as the zygote: `python -m vahana_worker.zygote`.
        setproctitle.setproctitle(shlex.join(["vahana-worker", *argv]))
        sys.argv = ["vahana-worker", *argv]
        # Stopped while it waits, it has nothing to drain: it leaves as a drained worker does.
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        turn.take()
        cli.main(argv)  # leaves with os._exit once drained
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    main()
