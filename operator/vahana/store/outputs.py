"""Each task attempt's whole output, as its worker streams it: one file per attempt under the
scheduler's state directory (`<root>/<task id>/a<attempt>.log`), up to a cap per attempt.

Chunks arrive at byte offsets. One that starts where the file ends is appended; one that
overlaps what is held contributes only its new bytes; one that starts past the end (a chunk
lost in between) is not written, and the answer (the size held) tells the worker where to
send from. Past the cap the bytes are dropped and the attempt is marked truncated, so a task
that prints without end costs the scheduler at most the cap on disk. The task's status keeps
its tail as before, so the end of such an output is still shown.

The SQL store keeps records, this keeps bytes: a restarted scheduler finds them where they were.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

DEFAULT_MAX_BYTES = 64 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class OutputStore:
    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def path(self, task_id: str, attempt: int) -> Path:
        safe = _UNSAFE.sub("_", task_id).lstrip(".") or "task"
        return self.root / safe / f"a{attempt}.log"

    def _marker(self, task_id: str, attempt: int) -> Path:
        return self.path(task_id, attempt).with_suffix(".truncated")

    def size(self, task_id: str, attempt: int) -> int:
        try:
            return self.path(task_id, attempt).stat().st_size
        except FileNotFoundError:
            return 0

    def truncated(self, task_id: str, attempt: int) -> bool:
        """Whether the cap cut the output. Workers spool no more than the cap either, so what
        filled it is taken as cut (an output of exactly the cap is reported as cut too)."""
        return self._marker(task_id, attempt).exists() or (
            self.max_bytes > 0 and self.size(task_id, attempt) >= self.max_bytes
        )

    def append(self, task_id: str, attempt: int, offset: int, data: bytes) -> int:
        """Writes what is new of `data` at `offset`; returns the offset the sender should
        continue from (past the cap: as if all was kept, for it is dropped on purpose)."""
        with self._lock:
            held = self.size(task_id, attempt)
            end = offset + len(data)
            if held >= self.max_bytes:
                self._mark_truncated(task_id, attempt)
                return max(end, held)  # full: whatever comes is dropped
            if offset > held or end <= held:
                return held  # a gap (resend from here) or nothing new
            fresh = data[held - offset :]
            room = self.max_bytes - held
            if len(fresh) > room:
                fresh = fresh[: max(0, room)]
                self._mark_truncated(task_id, attempt)
            if fresh:
                path = self.path(task_id, attempt)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "ab") as out:
                    out.write(fresh)
            return end  # all of it is kept, or dropped past the cap on purpose

    def _mark_truncated(self, task_id: str, attempt: int) -> None:
        marker = self._marker(task_id, attempt)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()

    def read(self, task_id: str, attempt: int, offset: int, limit: int) -> bytes:
        try:
            with open(self.path(task_id, attempt), "rb") as source:
                source.seek(offset)
                return source.read(limit)
        except FileNotFoundError:
            return b""

    def ending(self, task_id: str, attempt: int, offset: int, tail: str) -> bytes:
        """What follows the `offset` kept bytes of an ended attempt: the status's tail when none
        were streamed (a short task, or a worker that does not stream), or a note and the tail
        when the cap cut the output; else nothing."""
        data = tail.encode()
        if offset == 0:
            return data
        if self.truncated(task_id, attempt):
            note = (
                f"\n[vahana: output cut at {self.max_bytes} bytes; its last {len(data)} bytes:]\n"
            )
            return note.encode() + data
        return b""

    def remove(self, task_id: str) -> None:
        """Forgets every attempt's output of a task (when its record is removed)."""
        directory = self.path(task_id, 0).parent
        if directory.is_dir():
            for entry in directory.iterdir():
                entry.unlink(missing_ok=True)
            os.rmdir(directory)
