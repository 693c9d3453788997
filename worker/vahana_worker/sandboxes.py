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
import itertools
import os
import shutil

from vahana_worker import spares

SPARE_PREFIX = ".spare-"


class Sandboxes:
    """Sandboxes under one `tasks` directory. `make` and `remove` may be called from any
    thread."""

    def __init__(self, tasks_dir: str | os.PathLike[str], *, limit: int = 16) -> None:
        self._dir = os.fspath(tasks_dir)
        self._spares: spares.Spares[str] = spares.Spares(limit)
        self._names = itertools.count(1)  # next() of a count is atomic: no lock for names
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
        spare = self._spares.take()
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
        for spare in self._spares.close():
            shutil.rmtree(spare, ignore_errors=True)

    def _as_made(self, path: str) -> bool:
        listxattr = getattr(os, "listxattr", None)  # Linux only: elsewhere nothing is kept
        if listxattr is None:
            return False
        made = os.stat(path)
        return (made.st_mode, made.st_uid, made.st_gid) == self._made and not listxattr(path)

    def _keep(self, sandbox: str) -> bool:
        if self._spares.full() or self._made is None:
            return False
        spare = os.path.join(self._dir, f"{SPARE_PREFIX}{next(self._names)}")
        tmp = os.path.join(sandbox, "tmp")
        try:
            if os.listdir(sandbox) != ["tmp"] or os.listdir(tmp):
                return False
            if not (self._as_made(sandbox) and self._as_made(tmp)):
                return False
            os.rename(sandbox, spare)
        except OSError:
            return False
        if not self._spares.keep(spare):
            shutil.rmtree(spare, ignore_errors=True)  # closed (or filled) meanwhile
        return True
