"""Local workers forked by a zygote (`python -m vahana_worker.zygote`, its protocol there).

Starting a worker as a new interpreter costs about a quarter of a second of CPU in imports;
on a small machine four of them at once delay the first task by most of a second. The zygote
imports the worker once, and each worker is then a fork of it. `ForkedProcess` is the handle
the local pool keeps for each: the part of `subprocess.Popen` it uses, fed by the zygote's
reports (the workers are the zygote's children, so only it can wait for them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PARENT_PID_ENV = "VAHANA_WORKER_PARENT_PID"
"""The worker package's `linux.PARENT_PID_ENV`: the pid the zygote's parent says it has."""
SPAWN_TIMEOUT_S = 30.0
"""How long a fork request may wait for the zygote (which first imports the worker)."""


class ForkedProcess:
    """A worker forked by the zygote: `pid`, `poll`, `wait`, `send_signal`, `kill`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"worker pid {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # ended; its report is on the way
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _ended_with(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._ended.set()


class Zygote:
    """One zygote process and the thread that reads what it says."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._lock = threading.Lock()
        self._answers: queue.Queue[ForkedProcess | str] = queue.Queue()
        self._children: dict[int, ForkedProcess] = {}
        self._gone = threading.Event()
        self._process = subprocess.Popen(
            [python, "-m", "vahana_worker.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # stderr is the scheduler's: the zygote says nothing unless it cannot start.
            env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
            # Its own session, as each worker had: a Ctrl-C in the terminal reaches the
            # scheduler, which drains the workers in order.
            start_new_session=True,
        )
        self.pid = self._process.pid
        threading.Thread(target=self._read, name=f"zygote-{self.pid}", daemon=True).start()

    def alive(self) -> bool:
        return not self._gone.is_set()

    def fork(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: str,
        start_wait: float | None = None,
    ) -> ForkedProcess:
        """A new worker with these flags; OSError if the zygote cannot make one. `start_wait`:
        seconds it waits at most for the first worker of its start to start a task (default
        the zygote's, `vahana_worker.startgate.WAIT`)."""
        request: dict[str, object] = {
            "argv": list(argv),
            "env": dict(env),
            "cwd": cwd,
            "log": str(log_path),
        }
        if start_wait is not None:
            request["start_wait"] = start_wait
        with self._lock:
            if self._gone.is_set():
                raise OSError(f"the worker zygote (pid {self.pid}) has exited")
            stdin = self._process.stdin
            assert stdin is not None
            try:
                stdin.write(json.dumps(request).encode() + b"\n")
                stdin.flush()
            except (BrokenPipeError, ValueError) as error:
                raise OSError(f"the worker zygote (pid {self.pid}) has exited") from error
            try:
                answer = self._answers.get(timeout=SPAWN_TIMEOUT_S)
            except queue.Empty:
                # Its late answer would be taken for the next request's: this one is done with.
                self._gone.set()
                self._process.kill()
                raise OSError(
                    f"the worker zygote (pid {self.pid}) did not answer in {SPAWN_TIMEOUT_S:g} s"
                ) from None
        if isinstance(answer, str):
            raise OSError(answer)
        return answer

    def close(self) -> None:
        """Ends the zygote. The pool stops and waits for its workers first; one still left is
        killed (no one could wait for it after the zygote)."""
        with self._lock:
            if self._process.stdin is not None and not self._process.stdin.closed:
                self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("worker zygote said something unexpected: %r", line[:200])
                continue
            if "exited" in message:
                child = self._children.pop(int(message["exited"]), None)
                if child is not None:
                    child._ended_with(int(message["code"]))
            elif "pid" in message:
                child = ForkedProcess(int(message["pid"]))
                self._children[child.pid] = child
                self._answers.put(child)
            else:
                self._answers.put(str(message.get("error", message)))
        self._gone.set()
        code = self._process.wait()
        self._answers.put(f"the worker zygote (pid {self.pid}) exited with {code}")
        # Its workers lost their parent and were sent SIGTERM (--exit-with-parent); no one can
        # wait for them now, so they are ended here and told as killed.
        for child in list(self._children.values()):
            child.kill()
            child._ended_with(-signal.SIGKILL)
        self._children.clear()
        if code != 0:
            log.warning("worker zygote pid=%d exited with %d", self.pid, code)


_started: Zygote | None = None
_started_lock = threading.Lock()


def start_early() -> None:
    """Starts a zygote now, for the next local pool to take (`take`): its imports then overlap
    whatever this process does before the pool starts (`vahana run`'s own imports)."""
    global _started
    with _started_lock:
        if _started is None:
            _started = Zygote()


def take(python: str = sys.executable) -> Zygote:
    """The zygote started early if it is for `python` and alive, else a new one; the caller
    owns it (and closes it)."""
    global _started
    with _started_lock:
        early, _started = _started, None
    if early is not None and early.python == python and early.alive():
        return early
    if early is not None:
        early.close()
    return Zygote(python)
