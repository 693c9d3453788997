"""Reusable daemon threads for running tasks.

Starting a thread per task cost ~150 µs of the worker's CPU for each `true` task; a task's
thread now waits for the next task instead of exiting. Threads are daemons so that one stuck
in a task can never hold up the worker's exit, and they are started only when every existing
one is busy: the number of threads is the most tasks ever run at once (the worker's slots).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)


def let_others_run() -> None:
    """Lets go of the GIL long enough for a thread just woken to take it.

    Releasing it is not enough: a thread that releases and takes it back at once almost
    always gets it again before a thread woken on the other core does. `time.sleep(0)` sleeps
    for the timer slack (50–70 µs on Linux), which is the chance the other thread needs; it
    costs the caller that much time and no CPU.
    """
    time.sleep(0)


class ThreadReuser:
    """Runs each submitted callable on an idle thread, or on a new one if none is idle."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start_one = self._idle == 0
            if start_one:
                self._started += 1
                number = self._started
            else:
                self._idle -= 1  # that thread is now spoken for
        if start_one:
            threading.Thread(target=self._serve, daemon=True, name=f"{self._name}-{number}").start()
        self._jobs.put(job)

    @property
    def idle(self) -> int:
        """Threads waiting for a job."""
        with self._lock:
            return self._idle

    @property
    def threads(self) -> int:
        """Threads started so far."""
        with self._lock:
            return self._started

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except BaseException:  # a job's own bug must not lose the thread silently
                _log.exception("unexpected error in a task thread")
            with self._lock:
                self._idle += 1
