"""The Linux process controls the worker asks for (prctl through libc); no-ops elsewhere.

- `exit_with_parent`: SIGTERM when the parent dies (PR_SET_PDEATHSIG), so a local pool's
  worker drains and exits with its scheduler instead of retrying forever against it.
- `protect_secrets`: the worker's /proc entries (environ, memory, open files) become
  root's (PR_SET_DUMPABLE 0), so a task running as the worker's own user cannot read the
  pool's bootstrap secret or the worker token from them. exec resets it, so tasks are as
  dumpable and debuggable as ever.
- `become_subreaper`: orphans among the worker's descendants (a task's background process
  whose parent exited, a double-forked daemon) are reparented to the worker instead of to
  init (PR_SET_CHILD_SUBREAPER, Linux 3.4+), so the worker can reap them and knows they
  are its tasks' (`reaper`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def _libc() -> Any:
    """libc, or None. `CDLL(None)` is the running program's own symbols, libc's included; it
    needs no `find_library`, which runs ldconfig in a subprocess (a child the reaper would
    have to know of)."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        pass
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def _prctl(option: int, value: int) -> bool:
    libc = _libc()
    if libc is None:
        return False
    try:
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except AttributeError:  # not Linux
        return False


PARENT_PID_ENV = "VAHANA_WORKER_PARENT_PID"
"""Set by a parent that starts workers (the local pool) to its own pid."""


def exit_with_parent(sig: signal.Signals = signal.SIGTERM, *, parent: int | None = None) -> bool:
    """Asks for `sig` when the parent dies; False where the platform cannot do it.

    `parent`: the pid the parent said it has; without it, the parent at the time of the call
    (a parent that died between this process's start and the call goes unnoticed)."""
    expected = parent if parent is not None else os.getppid()
    if not _prctl(_PR_SET_PDEATHSIG, int(sig)):
        return False
    # The parent died before the request took effect: this process was handed to a reaper.
    # (Not `getppid() == 1`: in a container the parent may well be PID 1 itself.)
    if os.getppid() != expected:
        os.kill(os.getpid(), sig)
    return True


def protect_secrets() -> bool:
    """Hides this process's environment and memory from other processes of its user;
    False where the platform cannot do it."""
    return _prctl(_PR_SET_DUMPABLE, 0)


def become_subreaper() -> bool:
    """Makes orphaned descendants this process's children; False where the platform cannot."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)
