"""A real SQLite store whose writes can be made to fail, as a full disk fails them.

`FaultyStore` wraps a `SqliteStore` and passes everything through, except that a write can be
armed to fail: the n-th write call (insert, update, save, delete) from now, or the commit of
the transaction under way. The failure is SQLite's own error for a full disk, raised where
SQLite would raise it, so the store's rollback and its translation into `StoreUnavailable`
are the real ones.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from vahana.store import sqlite

WRITES = (
    "insert_tasks",
    "update_tasks",
    "save_attempts",
    "save_workers",
    "delete_workers",
    "save_queue_usage",
)
AT_COMMIT = 0
"""`arm(AT_COMMIT)`: the commit fails, after every write of the transaction went in."""


def disk_full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = 13  # type: ignore[attr-defined]
    error.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    return error


class FaultyStore:
    def __init__(self, inner: sqlite.SqliteStore) -> None:
        self.inner = inner
        self._fail_at: int | None = None
        self._writes = 0
        self.failures = 0
        """Failures injected so far."""
        self.gate = threading.Event()
        """Transactions wait for it to be set (it is): clear it to hold the writer."""
        self.gate.set()
        self.transactions = 0

    def arm(self, at: int | None) -> None:
        """Fails the `at`-th write call from now (1 = the next), or the next commit if
        `AT_COMMIT`; None: no failure. A failure disarms it."""
        self._fail_at, self._writes = at, 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in WRITES:
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            self._writes += 1
            if self._fail_at is not None and self._fail_at == self._writes:
                self._fire()
            return attribute(*args, **kwargs)

        return write

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.gate.wait()
        self.transactions += 1
        with self.inner.transaction():
            yield
            if self._fail_at == AT_COMMIT:
                self._fire()

    def check_writable(self) -> None:
        with self.transaction():  # the probe's write fails like any other
            self.inner.check_writable()

    def _fire(self) -> None:
        self._fail_at = None
        self.failures += 1
        raise disk_full()
