"""Making and removing task sandboxes, with emptied ones kept to be renamed for the next task.

Every attempt gets a new sandbox, `<working dir>/tasks/<name>` with an empty `tmp/` in it. On
ext4, a `mkdir` after many `rmdir`s looks through the recently deleted inodes for one to reuse:
with short tasks ending hundreds of times a second that search was a tenth of the worker's CPU
per task. So a sandbox its task left exactly as it was made (its `tmp/` and nothing else, both
empty, with the modes and owner they were made with, no extended attributes) is renamed to a
spare name instead of removed, and the next task's sandbox is that spare renamed again: no
inode is freed or allocated. Anything else a task left is removed as before, and at most
`limit` spares are kept; they go when the worker closes them and when a worker starts
(`sweep`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading

SPARE_PREFIX = ".spare-"


class Sandboxes:
    """Sandboxes under one `tasks` directory. `make` and `remove` may be called from any
    thread."""

    def __init__(self, tasks_dir: str | os.PathLike[str], *, limit: int = 16) -> None:
        self._dir = os.fspath(tasks_dir)
        self._limit = limit
        self._lock = threading.Lock()
        self._spares: list[str] = []
        self._count = 0
        self._made: tuple[int, int, int] | None = None
        """(mode, uid, gid) of a sandbox and of its tmp/ as this worker makes them."""

    def sweep(self) -> None:
        """Removes the spares an earlier life of this worker left (a crash, a kill)."""
        with contextlib.suppress(OSError), os.scandir(self._dir) as entries:
            for entry in entries:
                if entry.name.startswith(SPARE_PREFIX):
                    shutil.rmtree(entry.path, ignore_errors=True)

    def make(self, sandbox: str) -> None:
        """Makes `sandbox` and its empty `tmp/`: a spare renamed, or new directories. One
        left from an earlier life of the same attempt is replaced."""
        with self._lock:
            spare = self._spares.pop() if self._spares else None
        if spare is not None:
            try:
                os.rename(spare, sandbox)  # over an empty leftover too
                return
            except OSError:
                shutil.rmtree(spare, ignore_errors=True)
        try:
            os.mkdir(sandbox)
        except FileExistsError:  # an earlier life's, of this very attempt
            shutil.rmtree(sandbox)
            os.mkdir(sandbox)
        except FileNotFoundError:
            os.makedirs(sandbox)
        tmp = os.path.join(sandbox, "tmp")
        os.mkdir(tmp)
        if self._made is None:
            made = os.stat(sandbox)
            self._made = (made.st_mode, made.st_uid, made.st_gid)

    def remove(self, sandbox: str) -> None:
        """Removes a finished sandbox, or keeps it as a spare if its task left it as made."""
        if self._keep(sandbox):
            return
        try:  # the common case (two empty directories) without walking the tree
            os.rmdir(os.path.join(sandbox, "tmp"))
            os.rmdir(sandbox)
        except OSError:
            shutil.rmtree(sandbox, ignore_errors=True)

    def close(self) -> None:
        """Removes the spares; later removals remove."""
        with self._lock:
            spares, self._spares = self._spares, []
            self._limit = 0
        for spare in spares:
            shutil.rmtree(spare, ignore_errors=True)

    def _as_made(self, path: str) -> bool:
        listxattr = getattr(os, "listxattr", None)  # Linux only: elsewhere nothing is kept
        if listxattr is None:
            return False
        made = os.stat(path)
        return (made.st_mode, made.st_uid, made.st_gid) == self._made and not listxattr(path)

    def _keep(self, sandbox: str) -> bool:
        with self._lock:
            if len(self._spares) >= self._limit or self._made is None:
                return False
            self._count += 1
            spare = os.path.join(self._dir, f"{SPARE_PREFIX}{self._count}")
        tmp = os.path.join(sandbox, "tmp")
        try:
            if os.listdir(sandbox) != ["tmp"] or os.listdir(tmp):
                return False
            if not (self._as_made(sandbox) and self._as_made(tmp)):
                return False
            os.rename(sandbox, spare)
        except OSError:
            return False
        with self._lock:
            if len(self._spares) < self._limit:
                self._spares.append(spare)
                return True
        shutil.rmtree(spare, ignore_errors=True)  # closed meanwhile
        return True
