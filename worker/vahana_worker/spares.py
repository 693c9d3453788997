"""A bounded, thread-safe pool of things one task left emptied, kept for the next task instead
of being removed and made again (task sandboxes, task cgroups)."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Spares(Generic[T]):
    """At most `limit` spares. Once closed it keeps none: what it is offered is the caller's
    to remove."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: list[T] = []
        self._lock = threading.Lock()

    def take(self) -> T | None:
        """A spare, or None if there is none."""
        with self._lock:
            return self._kept.pop() if self._kept else None

    def full(self) -> bool:
        """No room for another (so a caller need not prepare one)."""
        with self._lock:
            return len(self._kept) >= self._limit

    def keep(self, spare: T) -> bool:
        """Keeps `spare` if there is room; False if not (full, or closed)."""
        with self._lock:
            if len(self._kept) < self._limit:
                self._kept.append(spare)
                return True
            return False

    def close(self) -> list[T]:
        """Keeps no more; returns the spares kept, for the caller to remove."""
        with self._lock:
            kept, self._kept = self._kept, []
            self._limit = 0
        return kept
