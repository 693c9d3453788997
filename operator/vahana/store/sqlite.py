"""The SQLite store: one file in WAL mode, the embedded and single-replica default.

`synchronous=NORMAL` in WAL mode keeps every committed transaction through a crash of the
process (kill -9); only a power loss can take the last commits, and it costs no fsync per commit.
A scheduler opens it with a `locking.FileLock`, taken before the database is touched and
released by `close()`, so that a second scheduler on the same file is refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vahana.store import base, locking, sql

_REASONS = {
    "SQLITE_FULL": "the task store cannot write: disk full",
    "SQLITE_IOERR": "the task store cannot write: disk I/O error",
    "SQLITE_BUSY": "the task store is busy: another process holds its lock",
    "SQLITE_LOCKED": "the task store is busy: another process holds its lock",
    "SQLITE_READONLY": "the task store cannot write: its file is read-only",
    "SQLITE_CANTOPEN": "the task store cannot open its file",
}


class SqliteStore(sql.SqlStore):
    def __init__(self, path: str | Path, *, lock: locking.FileLock | None = None) -> None:
        """`lock`: held from before the database is opened until `close()`."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if lock is not None:
            lock.acquire()
        self.lock = lock
        try:
            connection = sqlite3.connect(
                str(path), isolation_level="DEFERRED", check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=5000")
            super().__init__(connection)
            self.migrate()
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    def close(self) -> None:
        super().close()
        if self.lock is not None:
            self.lock.release()

    def _unavailable(self, error: BaseException) -> base.StoreUnavailable | None:
        # OperationalError is what SQLite raises when the file, not the statement, is at
        # fault: disk full, I/O error, locked, read-only.
        if not isinstance(error, sqlite3.OperationalError):
            return super()._unavailable(error)
        name = getattr(error, "sqlite_errorname", "") or ""
        reason = next((text for code, text in _REASONS.items() if name.startswith(code)), "")
        if not reason:  # SQLITE_ERROR and the like: the statement's fault, a bug to see
            return super()._unavailable(error)
        return base.StoreUnavailable(f"{reason} (sqlite: {error}); try again")

    def _lock_migrations(self) -> None:
        # The sqlite3 module opens no transaction for DDL: open a write transaction explicitly,
        # which makes the migrations atomic and makes a second process wait (busy_timeout).
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
