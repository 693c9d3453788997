"""The SQLite store: one file in WAL mode, the embedded and single-replica default.

`synchronous=NORMAL` in WAL mode keeps every committed transaction through a crash of the
process (kill -9); only a power loss can take the last commits, and it costs no fsync per commit.
A scheduler opens it with a `locking.FileLock`, taken before the database is touched and
released by `close()`, so that a second scheduler on the same file is refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from vahana.store import locking, sql


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

    def _lock_migrations(self) -> None:
        # The sqlite3 module opens no transaction for DDL: open a write transaction explicitly,
        # which makes the migrations atomic and makes a second process wait (busy_timeout).
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
