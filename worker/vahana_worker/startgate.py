"""Workers forked together let the first of them start its first task before they start.

On two cores, four workers forked at once each got a third of a core for their own start-up
(settings, custody, the cgroup probe: about 40 ms of CPU each), beside the scheduler's, and
the first task waited for all of it: it started 85–95 ms after the first fork, about 60 ms
when that worker started alone. So the zygote gives the first worker it forks the write end
of a pipe (`hold`), and the workers forked after it, until that end is closed, the read end
(`wait_turn`). The first worker closes its end once its first task's process has started
(`release`), `IDLE_GRACE` after it registered if no task has come by then (`release_soon`),
or by exiting; the others wait for that at most `WAIT` seconds, so that a worker that cannot
reach its scheduler delays them by no more.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading

WAIT = 0.5
"""Seconds a worker waits at most for the first one's first task."""
IDLE_GRACE = 0.02
"""Seconds after its registration that the first worker holds the others without a task: a
task queued already reaches it within that; with none, the others need not wait longer."""

_held: int | None = None
_lock = threading.Lock()  # a task's thread and the idle timer may release at once


def hold(fd: int) -> None:
    """In the first worker of a start: the gate's write end, closed by `release()`."""
    global _held
    _held = fd


def release() -> None:
    """A task has started: the workers forked after this one start now (no-op but the
    first time in the first worker of a start)."""
    global _held
    if _held is None:  # every task after the first: nothing to take the lock for
        return
    with _lock:
        fd, _held = _held, None
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def release_soon(seconds: float = IDLE_GRACE) -> None:
    """`release()` in `seconds`, unless something releases first (no-op without a gate)."""
    if _held is not None:
        timer = threading.Timer(seconds, release)
        timer.daemon = True
        timer.start()


def wait_turn(fd: int, timeout: float = WAIT) -> None:
    """Waits until the gate's write end is closed everywhere, or `timeout`; closes `fd`."""
    try:
        with contextlib.suppress(OSError):  # the gate is only a courtesy: go on
            _readable(fd, timeout)
    finally:
        os.close(fd)


def is_open(fd: int) -> bool:
    """Whether the gate read by `fd` is open (its write end closed): never waits."""
    return _readable(fd, 0.0)


def _readable(fd: int, timeout: float) -> bool:
    poller = select.poll()  # not select(): descriptors past 1023 are fine
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))
