"""Ties the worker's life to the process that started it (a local pool's scheduler).

Linux delivers a chosen signal to a process when its parent dies (PR_SET_PDEATHSIG); the
worker asks for SIGTERM, so it drains and exits like on any other SIGTERM instead of
retrying forever against a scheduler that is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

_PR_SET_PDEATHSIG = 1


def exit_with_parent(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Asks for `sig` when the parent dies; False where the platform cannot do it."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
    return True
