"""The start-up check of the working directory: can the worker make, write and remove a sandbox?

A worker that cannot make sandboxes fails every task it takes within milliseconds, each as an
infrastructure failure, and drains the queue into the retry budget (seen with a volume the
worker's user could not write). So before it registers, the worker does what each task will do —
makes a directory under `<working dir>/tasks`, writes a file in it, removes both — and exits 1
if it cannot, saying what failed, on which path, why (the system's error), and what to change.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

_ADVICE = {
    errno.EACCES: "make it writable by uid {uid} (gid {gid}), e.g. an fsGroup or chown of the "
    "volume, or point --working-dir elsewhere",
    errno.EPERM: "make it writable by uid {uid} (gid {gid}), or point --working-dir elsewhere",
    errno.EROFS: "mount a writable volume there, or point --working-dir elsewhere",
    errno.ENOSPC: "free space on its filesystem, or point --working-dir elsewhere",
    errno.EDQUOT: "raise the quota of uid {uid}, or point --working-dir elsewhere",
    errno.ENOTDIR: "a part of the path is a file; point --working-dir at a directory",
}


def _why(action: str, path: Path, error: OSError) -> str:
    advice = _ADVICE.get(error.errno or 0, "point --working-dir at a directory the worker may use")
    name = errno.errorcode.get(error.errno or 0, "?")
    text = error.strerror or str(error)
    return f"cannot {action} {path}: {text} ({name}); " + advice.format(
        uid=os.geteuid(), gid=os.getegid()
    )


def check(working_dir: Path) -> str:
    """Why sandboxes cannot be made in `working_dir` ("" if they can). Leaves the working dir
    and its `tasks` directory in place (made if missing), nothing else."""
    probe = working_dir / "tasks" / f".vahana-check-{os.getpid()}"
    steps = (
        ("create", working_dir, lambda: working_dir.mkdir(parents=True, exist_ok=True)),
        ("create", working_dir / "tasks", lambda: (working_dir / "tasks").mkdir(exist_ok=True)),
        ("create a sandbox in", working_dir / "tasks", lambda: probe.mkdir(exist_ok=True)),
        ("write", probe / "check", lambda: (probe / "check").write_bytes(b"vahana\n")),
        ("remove", probe / "check", lambda: (probe / "check").unlink()),
        ("remove", probe, probe.rmdir),
    )
    for action, path, step in steps:
        try:
            step()
        except OSError as error:
            return _why(action, path, error)
    return ""
