"""The Linux process controls the worker asks for (prctl through libc); no-ops elsewhere.

- `exit_with_parent`: SIGTERM when the parent dies (PR_SET_PDEATHSIG), so a local pool's
  worker drains and exits with its scheduler instead of retrying forever against it.
- `protect_secrets`: the worker's /proc entries (environ, memory, open files) become
  root's (PR_SET_DUMPABLE 0), so a task running as the worker's own user cannot read the
  pool's bootstrap secret or the worker token from them. exec resets it, so tasks are as
  dumpable and debuggable as ever.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4


def _prctl(option: int, value: int) -> bool:
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        return bool(ctypes.CDLL(name, use_errno=True).prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def exit_with_parent(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Asks for `sig` when the parent dies; False where the platform cannot do it."""
    parent = os.getppid()
    if not _prctl(_PR_SET_PDEATHSIG, int(sig)):
        return False
    # The parent died before the request took effect: this process was handed to a reaper.
    # (Not `getppid() == 1`: in a container the parent may well be PID 1 itself.)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True


def protect_secrets() -> bool:
    """Hides this process's environment and memory from other processes of its user;
    False where the platform cannot do it."""
    return _prctl(_PR_SET_DUMPABLE, 0)
