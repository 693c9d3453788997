"""Keeps the last N bytes of a stream (a task's combined stdout and stderr)."""

from __future__ import annotations

import threading


class TailBuffer:
    """A thread-safe byte buffer that keeps only the last `limit` bytes written to it."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self._limit = limit
        self._data = bytearray()
        self._total = 0
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> None:
        """Appends `chunk`, dropping the oldest bytes beyond the limit."""
        with self._lock:
            self._total += len(chunk)
            if self._limit == 0:
                return
            if len(chunk) >= self._limit:
                self._data[:] = chunk[-self._limit :]
                return
            self._data += chunk
            excess = len(self._data) - self._limit
            if excess > 0:
                del self._data[:excess]

    @property
    def total_bytes(self) -> int:
        """How many bytes were written in all, kept or not."""
        with self._lock:
            return self._total

    def getvalue(self) -> bytes:
        """The bytes kept."""
        with self._lock:
            return bytes(self._data)

    def text(self) -> str:
        """The bytes kept, decoded as UTF-8 (invalid or cut sequences become U+FFFD)."""
        return self.getvalue().decode("utf-8", errors="replace")
