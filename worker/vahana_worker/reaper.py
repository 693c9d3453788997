"""Reaps every child the worker inherits, and ends the orphans no running task accounts for.

The worker is PID 1 in a Pod: every process of the container whose parent exits (a task's
`(sleep 1 &)`, a double-forked daemon) becomes its child, and stays a zombie, holding its pid,
until the worker reaps it. Elsewhere the worker makes itself a child subreaper, so the orphans
of its tasks come to it rather than to the host's init: it reaps them, and it can find them.

The executor waits for each task's main process itself (pidfd, then `Popen.wait`), and Python's
`Popen` takes a child reaped by someone else for one that exited with 0. So the reaper never
reaps a child the worker started. It reaps only among the children of the worker's main thread:
the kernel hands an adopted orphan to the first live thread of the adopting process, the main
one, while a child belongs to the thread that forked it — a task's process to its task thread
(those threads never exit, so their children stay theirs). The worker's own helpers started by
the main thread (the guardian) are started inside `spawning()`, which holds the reaper's lock
until the child's pid is registered as *owned*; the reaper filters and reaps under that lock, so
it never reaps one. (A task run from the main thread, as in tests, is started the same way.) A
task's process is started outside the lock: holding it would make the slots take turns in fork
and exec, ~1 ms each. Everything else the main thread has is a *stray* — an orphan — and is
reaped when it exits (on SIGCHLD, at most every MIN_GAP; a periodic scan catches a missed
signal).

Strays that still run are looked at too (`_police`): a stray whose marker (`procs.Marker`) names
a task of this worker life that has ended, or a dead earlier life of this worker, is ended
(SIGTERM, then SIGKILL after the grace). A stray that names no task of this worker (it cleared
its environment, or carries another worker's marker) cannot be told apart from a running task's
process, so it is ended only when no task runs. A task's own leftovers are normally ended by
the executor when the task ends (`taskprocs`); this is the backstop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator

from vahana_worker import linux, procs

_log = logging.getLogger(__name__)

SCAN_INTERVAL = 1.0
"""Seconds between scans when no SIGCHLD comes (a signal can be missed: several children
exiting at once raise one)."""
KILL_WAIT = 2.0
"""Seconds to wait for orphans sent SIGKILL on shutdown before giving up on them."""
MIN_GAP = 0.05
"""Least seconds between two scans: SIGCHLD comes for every task's exit, and a scan reads a
file per worker thread; a zombie waits at most this long to be reaped."""

INIT = "init"
SUBREAPER = "subreaper"
NONE = "none"


KEEP = "keep"
END = "end"
UNMARKED = "unmarked"


def judge(
    marker: procs.Marker | None,
    *,
    worker_id: str,
    life: procs.Life,
    running: set[str],
    alive: Callable[[procs.Life], bool],
) -> str:
    """What to do with a stray that carries `marker`: KEEP (its task runs), END (its task has
    ended, or the worker life that ran it) or UNMARKED (it names no task of this worker: end it
    once no task runs). A stray is always this worker's descendant — only those are reparented
    to it — so another worker's marker (a worker run inside a task, or a forged one) names no
    task of ours either."""
    if marker is None or marker.worker_id != worker_id:
        return UNMARKED
    if marker.life == life:
        return KEEP if marker.sandbox in running else END
    return UNMARKED if alive(marker.life) else END


class Reaper:
    """The worker's children: which are owned, reaping the rest, ending stray orphans."""

    def __init__(self, *, worker_id: str, life: procs.Life, grace: float) -> None:
        self.worker_id = worker_id
        self.life = life
        self._grace = grace
        self._lock = threading.Lock()
        self._owned: dict[int, str] = {}
        """pid → the sandbox of the task it runs ("" for the worker's own helpers)."""
        self._running: dict[str, int] = {}
        """Sandboxes of the tasks being started or running → how many (one, but for a
        task run twice at once by mistake)."""
        self._doomed: dict[tuple[int, int], float] = {}
        """Strays sent SIGTERM, as (pid, start) → when SIGKILL is due (monotonic)."""
        self._judged: dict[tuple[int, int], str] = {}
        """What `_police` decided for a stray: "keep" or "end" (a marker is read once)."""
        self.mode = NONE
        self.reaped = 0
        """Strays reaped so far."""
        self.ended = 0
        """Strays ended (signalled) so far."""
        self._wake_read, self._wake_write = os.pipe()  # not inherited by children
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- set-up ------------------------------------------------------------------------------

    def adopt_orphans(self) -> str:
        """Makes orphans come to this process: as PID 1 they do already; elsewhere it becomes
        a child subreaper. Returns the mode: "init", "subreaper" or "none" (they go to init)."""
        if os.getpid() == 1:
            self.mode = INIT
        elif linux.become_subreaper():
            self.mode = SUBREAPER
        return self.mode

    @property
    def catches_orphans(self) -> bool:
        """True if the orphans of this process's descendants become its children."""
        return self.mode != NONE

    def watch_sigchld(self) -> bool:
        """Scans as soon as a child exits; main thread only (False elsewhere: scans then run
        every SCAN_INTERVAL)."""

        def on_sigchld(_signum: int, _frame: object) -> None:
            self._wake()

        try:
            signal.signal(signal.SIGCHLD, on_sigchld)
        except ValueError:  # not the main thread
            return False
        # Restart interrupted system calls: gRPC's threads and ours need not see EINTR.
        signal.siginterrupt(signal.SIGCHLD, False)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)
        self._thread.start()

    # -- owned children ----------------------------------------------------------------------

    @contextlib.contextmanager
    def spawning(self, sandbox: str = "") -> Iterator[Callable[[int], None]]:
        """Start a child inside this block and pass its pid to the function it yields: until
        released, the reaper leaves that pid to its owner. `sandbox` names the task it runs,
        which counts as running from before its process starts (so an orphan of it is never
        taken for a finished task's) until `release`."""
        with self._lock:
            if sandbox:
                self._running[sandbox] = self._running.get(sandbox, 0) + 1
        started: list[int] = []
        try:
            if sandbox and threading.current_thread() is not threading.main_thread():
                yield started.append
            else:
                with self._lock:
                    yield lambda pid: self._owned.__setitem__(pid, sandbox)
        except BaseException:
            self._forget(sandbox)
            raise
        with self._lock:
            for pid in started:
                self._owned[pid] = sandbox

    def release(self, pid: int) -> None:
        """Gives a pid back after its owner reaped it. A task's end wakes the reaper: an
        orphan of it the executor could not tell was its own is looked at now (its exit's
        SIGCHLD came while it still ran)."""
        with self._lock:
            sandbox = self._owned.pop(pid, None)
        if sandbox:
            self._forget(sandbox)
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a scan is due already
            os.write(self._wake_write, b"\0")

    def _forget(self, sandbox: str) -> None:
        with self._lock:
            left = self._running.get(sandbox, 0) - 1
            if left > 0:
                self._running[sandbox] = left
            else:
                self._running.pop(sandbox, None)

    def running_sandboxes(self) -> set[str]:
        with self._lock:
            return set(self._running)

    # -- strays ------------------------------------------------------------------------------

    def _child_pids(self) -> list[int]:
        """The children of the worker's main thread: where the kernel puts adopted orphans
        (the first live thread of the adopting process), and where the worker's own helpers
        (the guardian) are started; task processes, started by task threads, are not listed.
        Read without the lock: a child started meanwhile is not in the list, and one listed
        is filtered against the owned pids under the lock."""
        me = os.getpid()
        found = procs.thread_children(me, me)
        if found is None:  # no children files: the slow way
            found = [s.pid for s in procs.scan().values() if s.ppid == me]
        return found

    def strays(self) -> list[procs.Stat]:
        """The worker's children it did not start: orphans of its tasks (zombies included)."""
        kids = self._child_pids()
        with self._lock:
            pids = [pid for pid in kids if pid not in self._owned]
        return [s for pid in pids if (s := procs.stat(pid)) is not None]

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """While held, no stray is reaped: a stray found now keeps its pid (as a zombie, if
        it exits) until released, so a signal to it cannot reach another process."""
        with self._lock:
            yield

    def reap(self) -> list[int]:
        """Reaps every stray that has exited; returns the strays still running."""
        kids = self._child_pids()
        running: list[int] = []
        count = 0
        with self._lock:  # only pids not owned now: an owned child is its owner's to reap
            for pid in kids:
                if pid in self._owned:
                    continue
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    continue
                if done == pid:
                    count += 1
                else:
                    running.append(pid)
        self.reaped += count
        if count:
            _log.debug("reaped orphans", extra={"kv": {"count": count}})
        return running

    def _verdict(self, stray: procs.Stat, running: set[str]) -> str:
        return judge(
            procs.marker_of(stray.pid),
            worker_id=self.worker_id,
            life=self.life,
            running=running,
            alive=procs.Life.alive,
        )

    def _police(self, pids: list[int]) -> None:
        """Ends strays of finished tasks and of dead lives, and, when no task runs, strays
        without a marker; SIGKILL follows SIGTERM after the grace. (`procs.kill` signals a
        process only while it is the one found, so a pid reused meanwhile is safe.)"""
        running = self.running_sandboxes()
        now = time.monotonic()
        strays = [s for pid in pids if (s := procs.stat(pid)) is not None and not s.ended]
        live = {(s.pid, s.start) for s in strays}
        self._judged = {k: v for k, v in self._judged.items() if k in live}
        self._doomed = {k: t for k, t in self._doomed.items() if k in live}
        for stray in strays:
            key = (stray.pid, stray.start)
            due = self._doomed.get(key)
            if due is not None:
                if now >= due and procs.kill(stray, signal.SIGKILL):
                    self._doomed[key] = now + self._grace
                continue
            verdict = self._judged.get(key) or self._verdict(stray, running)
            if verdict != UNMARKED:
                self._judged[key] = verdict
            if verdict == END or (verdict == UNMARKED and not running):
                _log.info(
                    "ending an orphan no running task accounts for",
                    extra={"kv": {"pid": stray.pid, "why": verdict}},
                )
                procs.kill(stray, signal.SIGTERM)
                for pid in procs.tree_below([stray.pid]):
                    below = procs.stat(pid)
                    if below is not None:
                        procs.kill(below, signal.SIGTERM)
                self._doomed[key] = now + self._grace
                self.ended += 1

    def end_all_strays(self, grace: float) -> int:
        """On shutdown: ends every stray and what runs below it (SIGTERM, then SIGKILL after
        `grace`), and reaps them. Returns how many processes there were."""
        deadline = time.monotonic() + grace
        signalled: set[tuple[int, int]] = set()
        sig = signal.SIGTERM
        while True:
            with self._lock:  # the reaper thread reaps none of them between look and signal
                strays = [s for s in self._strays_locked() if not s.ended]
                tree = procs.tree_below(s.pid for s in strays)
                below = [s for pid in tree if (s := procs.stat(pid)) and not s.ended]
                for found in (*strays, *below):
                    if procs.kill(found, sig):
                        signalled.add((found.pid, found.start))
            self.reap()
            if not strays and not below:
                return len(signalled)
            if time.monotonic() >= deadline:
                if sig == signal.SIGKILL and time.monotonic() >= deadline + KILL_WAIT:
                    _log.warning("orphans outlived SIGKILL", extra={"kv": {"count": len(strays)}})
                    return len(signalled)
                sig = signal.SIGKILL
            self._stop.wait(0.02)

    def _strays_locked(self) -> list[procs.Stat]:
        """`strays()` for a caller that holds the lock."""
        kids = self._child_pids()
        return [s for pid in kids if pid not in self._owned and (s := procs.stat(pid))]

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._wake_read, select.POLLIN)
        last = 0.0
        while not self._stop.is_set():
            timeout = SCAN_INTERVAL
            if self._doomed:
                timeout = min(timeout, max(0.0, min(self._doomed.values()) - time.monotonic()))
            with contextlib.suppress(InterruptedError):
                poller.poll(timeout * 1000)
            # A burst of exits (one per task, at hundreds of tasks/s) makes one scan.
            self._stop.wait(max(0.0, last + MIN_GAP - time.monotonic()))
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 4096)
            if self._stop.is_set():
                return
            last = time.monotonic()
            try:
                running = self.reap()
                if self.mode != NONE and (running or self._doomed):
                    self._police(running)
            except Exception:
                # A janitor that stopped would let zombies pile up: log it, go on next time.
                _log.exception("reaper scan failed")

    def close(self) -> None:
        """Stops the loop (idempotent)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")
        if self._thread is not None:
            self._thread.join(timeout=5.0)
