"""The PostgreSQL store: the shared SQL of `sql.SqlStore` over one psycopg 3 connection.

For several schedulers' worth of history, or a database the platform already runs and backs up.
Only the dialect lives here: the `%s` parameter style, the migration lock, reads in their own
short transactions, and what happens when the connection goes away.

Connection loss: the transaction that finds the connection gone fails with
`base.StoreUnavailable` (the scheduler rolls back what it had decided and tells the caller to
try again); the next transaction connects again, once, and fails the same way if the server is
still unreachable. Nothing is retried silently. A connection lost while COMMIT is under way
leaves its outcome unknown to the client; it is reported as failed.

Exclusive (a scheduler's store): every connection takes the store lock of `locking` before it
is used, so only the session holding that lock ever writes; a store that finds the lock taken
by another scheduler after a lost connection is refused from then on (`locking.AdvisoryLock`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from vahana.store import base, locking, sql

MIGRATION_LOCK = 0x76616861  # "vaha": the pg_advisory_xact_lock key that serialises migrate()
CONNECT_TIMEOUT_SECONDS = 10


class PostgresStore(sql.SqlStore):
    """Write-through store on PostgreSQL; opens `url` and applies the migrations."""

    placeholder = "%s"

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        exclusive: bool = False,
    ) -> None:
        """`exclusive`: hold the store lock (raises `locking.StoreLocked` when another does)."""
        self.url = url
        self.safe_url = base.redact_url(url)
        self._connect_timeout = connect_timeout
        self._closed = False
        self.lock = locking.AdvisoryLock(self.safe_url) if exclusive else None
        super().__init__(self._connect())
        self.migrate()

    def _connect(self) -> psycopg.Connection[Any]:
        if self.lock is not None and self.lock.lost is not None:
            raise self.lock.lost  # lost to another scheduler: no connection is of any use
        try:
            connection = psycopg.connect(
                self.url,
                autocommit=False,
                connect_timeout=max(1, round(self._connect_timeout)),
                application_name=locking.identity(),  # names this scheduler to a refused one
            )
        except psycopg.Error as error:
            raise self._unreachable(error) from error
        if self.lock is None:
            return connection
        try:
            self.lock.take(connection)
        except BaseException as error:
            connection.close()
            if isinstance(error, psycopg.Error):
                raise self._unreachable(error) from error
            raise
        return connection

    def _unreachable(self, error: psycopg.Error) -> base.StoreUnavailable:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        return base.StoreUnavailable(
            f"store {self.safe_url}: cannot connect to PostgreSQL ({detail}). "
            "Check that the server is running and reachable, that the database and role "
            "exist, and the URL (postgresql://user:password@host:port/db, or "
            "?host=/socket/dir for a Unix socket)."
        )

    # -- dialect --------------------------------------------------------------------------
    def _sql(self, sql_text: str) -> str:
        # psycopg reads `%` as the start of a placeholder: escape literal ones first.
        return sql_text.replace("%", "%%").replace("?", "%s")

    def _lock_migrations(self) -> None:
        self._execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def _rows(self, sql_text: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        # A read outside transaction() is a transaction of its own, so that the connection is
        # never left idle in a transaction (holding locks and an old snapshot).
        if self._depth:
            return super()._rows(sql_text, params)
        with self.transaction():
            return super()._rows(sql_text, params)

    # -- transactions and connection loss -------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            with super().transaction():
                yield
            return
        if self._closed:
            raise base.StoreUnavailable(f"store {self.safe_url}: used after close()")
        if self._db.closed or self._db.broken:
            self._reconnect()
        with super().transaction():
            yield

    def _unavailable(self, error: BaseException) -> base.StoreUnavailable | None:
        if not isinstance(error, psycopg.OperationalError):
            return super()._unavailable(error)
        if self._db.closed or self._db.broken:
            return self._lost(error)
        # The server answered but cannot do it: disk full, too many connections, shutting down.
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        return base.StoreUnavailable(
            f"the task store cannot write (postgresql {self.safe_url}: {detail}); try again"
        )

    def _reconnect(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._db.close()
        try:
            self._db = self._connect()
        except locking.StoreLocked:
            raise  # another scheduler has the store: not a lost connection, and final
        except base.StoreUnavailable as error:
            raise self._lost(error.__cause__) from error.__cause__

    def _lost(self, error: BaseException | None) -> base.StoreUnavailable:
        detail = str(error).strip().splitlines()[0] if error and str(error).strip() else "closed"
        return base.StoreUnavailable(
            f"store {self.safe_url}: the connection to PostgreSQL was lost ({detail}); this "
            "call failed. Try again: the next call connects again by itself (while the server "
            "is down, every call fails the same way)."
        )

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(psycopg.Error):
            self._db.close()
