"""The store on any DB-API database: the SQL shared by SQLite and PostgreSQL.

Subclasses give the connection, the parameter style and the upsert dialect; the statements
and the row layout (`codec`) live here once.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from vahana.core import fairshare, models
from vahana.store import base, codec

log = logging.getLogger(__name__)
_UNFINISHED = ("PENDING", "ASSIGNED", "RUNNING")


class SqlStore:
    """Write-through store over one DB-API connection, used from one thread at a time."""

    placeholder = "?"

    def __init__(self, connection: Any) -> None:
        self._db = connection
        self._depth = 0

    # -- transactions -------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One commit for the writes inside; nested use joins the outer one.

        A failure of the database itself (disk full, connection lost, locked) leaves as
        `base.StoreUnavailable` with a reason a person can act on; the transaction is rolled
        back either way, and the store stays usable for the next one.
        """
        self._depth += 1
        try:
            yield
            if self._depth == 1:
                self._db.commit()
        except BaseException as error:
            if self._depth == 1:
                with contextlib.suppress(Exception):  # a lost connection cannot roll back
                    self._db.rollback()
                unavailable = self._unavailable(error)
                if unavailable is not None:
                    raise unavailable from error
            raise
        finally:
            self._depth -= 1

    def _unavailable(self, error: BaseException) -> base.StoreUnavailable | None:
        """The error as `StoreUnavailable` when the database failed (not the statement)."""
        return error if isinstance(error, base.StoreUnavailable) else None

    def check_writable(self) -> None:
        """A tiny write that changes nothing: raises `StoreUnavailable` while the database
        cannot write (disk full, server down), returns once it can again."""
        with self.transaction():
            self._execute(
                "UPDATE schema_migrations SET version = version "
                "WHERE version = (SELECT MAX(version) FROM schema_migrations)"
            )

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self._db.cursor()
        cursor.execute(self._sql(sql), params)
        return cursor

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._db.cursor().executemany(self._sql(sql), rows)

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        try:
            cursor = self._execute(sql, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except Exception as error:
            unavailable = None if self._depth else self._unavailable(error)
            if unavailable is not None:
                raise unavailable from error
            raise

    def _autocommit(self) -> contextlib.AbstractContextManager[None]:
        return self.transaction()

    # -- migrations ---------------------------------------------------------------------
    def migrate(self) -> None:
        """Applies the numbered migrations shipped in `vahana/store/migrations/` not yet applied.

        One transaction for all of them, opened by `_lock_migrations()`: a store that starts
        next to another one waits, then sees what the other applied.
        """
        folder = importlib.resources.files("vahana.store") / "migrations"
        scripts = sorted(
            (int(entry.name.split("_", 1)[0]), entry)
            for entry in folder.iterdir()
            if entry.name.endswith(".sql")
        )
        with self.transaction():
            self._lock_migrations()
            self._execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)"
            )
            applied = {
                row["version"] for row in self._rows("SELECT version FROM schema_migrations")
            }
            for version, entry in scripts:
                if version in applied:
                    continue
                self._run_script(entry.read_text())
                self._execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
                log.info("applied store migration version=%d", version)

    def _lock_migrations(self) -> None:
        """Serialises `migrate()` between processes until the end of its transaction."""

    def _run_script(self, script: str) -> None:
        for statement in script.split(";"):
            lines = [line for line in statement.splitlines() if not line.strip().startswith("--")]
            if "".join(lines).strip():
                self._execute("\n".join(lines))

    # -- writes -------------------------------------------------------------------------
    def insert_tasks(self, tasks: Sequence[models.TaskRecord]) -> None:
        columns = ", ".join(codec.TASK_COLUMNS)
        marks = ", ".join("?" for _ in codec.TASK_COLUMNS)
        with self._autocommit():
            self._executemany(
                f"INSERT INTO tasks ({columns}) VALUES ({marks})",
                [codec.task_row(task) for task in tasks],
            )

    def update_tasks(self, tasks: Sequence[models.TaskRecord]) -> None:
        assignments = ", ".join(f"{column} = ?" for column in codec.TASK_MUTABLE)
        with self._autocommit():
            self._executemany(
                f"UPDATE tasks SET {assignments} WHERE id = ?",
                [(*codec.task_mutable_row(task), task.id) for task in tasks],
            )

    def save_attempts(self, attempts: Sequence[models.AttemptRecord]) -> None:
        with self._autocommit():
            self._upsert(
                "attempts",
                codec.ATTEMPT_COLUMNS,
                ("task_id", "attempt"),
                [codec.attempt_row(a) for a in attempts],
            )

    def save_workers(self, workers: Sequence[models.WorkerRecord]) -> None:
        with self._autocommit():
            self._upsert(
                "workers", codec.WORKER_COLUMNS, ("id",), [codec.worker_row(w) for w in workers]
            )

    def delete_workers(self, worker_ids: Sequence[str]) -> None:
        with self._autocommit():
            self._executemany("DELETE FROM workers WHERE id = ?", [(i,) for i in worker_ids])

    def save_queue_usage(self, usages: Sequence[fairshare.SavedUsage]) -> None:
        with self._autocommit():
            self._upsert(
                "queue_usage",
                codec.QUEUE_USAGE_COLUMNS,
                ("queue",),
                [codec.queue_usage_row(usage) for usage in usages],
            )

    def _upsert(
        self, table: str, columns: Sequence[str], conflict: Sequence[str], rows: list[Any]
    ) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in conflict)
        self._executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates}",
            rows,
        )

    # -- reads --------------------------------------------------------------------------
    def get_task(self, task_id: str) -> models.TaskRecord | None:
        rows = self._rows("SELECT * FROM tasks WHERE id = ?", (task_id,))
        return codec.task_from_row(rows[0]) if rows else None

    def find_tasks_by_name(self, name: str) -> list[models.TaskRecord]:
        rows = self._rows("SELECT * FROM tasks WHERE name = ? ORDER BY seq", (name,))
        return [codec.task_from_row(row) for row in rows]

    def find_array_instances(self, name: str) -> list[models.TaskRecord]:
        prefix = name + "["
        rows = self._rows(
            "SELECT * FROM tasks WHERE substr(name, 1, ?) = ? ORDER BY seq", (len(prefix), prefix)
        )
        return [codec.task_from_row(row) for row in rows]

    def find_task_ids_by_keys(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        wanted = [key for key in keys if key]
        for part in base.chunks(wanted):
            marks = ", ".join("?" for _ in part)
            for row in self._rows(f"SELECT key, id FROM tasks WHERE key IN ({marks})", part):
                found[row["key"]] = row["id"]
        return found

    def list_tasks(
        self,
        *,
        phase: models.TaskPhase | None = None,
        namespace: str | None = None,
        ids: Sequence[str] = (),
        limit: int = 0,
        after_seq: int = 0,
    ) -> list[models.TaskRecord]:
        where: list[str] = []
        params: list[Any] = []
        if phase is not None:
            where.append("phase = ?")
            params.append(phase.value)
        if namespace:
            where.append("namespace = ?")
            params.append(namespace)
        if ids:
            where.append(f"id IN ({', '.join('?' for _ in ids)})")
            params.extend(ids)
        if after_seq > 0:
            where.append("seq > ?")
            params.append(after_seq)
        sql = "SELECT * FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if limit > 0:
            sql += f" LIMIT {int(limit)}"
        return [codec.task_from_row(row) for row in self._rows(sql, params)]

    def page_tasks(self, query: base.TaskQuery) -> base.TaskPage:
        where: list[str] = []
        params: list[Any] = []
        if query.phases:
            where.append(f"phase IN ({', '.join('?' for _ in query.phases)})")
            params.extend(phase.value for phase in query.phases)
        if query.pool is not None:
            where.append("pool = ?")
            params.append(query.pool)
        if query.search:
            # LIKE's own wildcards in the search are escaped: they match themselves.
            pattern = query.search.lower().replace("\\", "\\\\")
            pattern = pattern.replace("%", "\\%").replace("_", "\\_")
            where.append("(lower(name) LIKE ? ESCAPE '\\' OR id = ?)")
            params.extend([f"%{pattern}%", query.search])
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        total = int(self._rows(f"SELECT COUNT(*) AS n FROM tasks{condition}", params)[0]["n"])
        rows = self._rows(
            f"SELECT * FROM tasks{condition} ORDER BY seq DESC "
            f"LIMIT {max(0, int(query.limit))} OFFSET {max(0, int(query.offset))}",
            params,
        )
        return base.TaskPage([codec.task_from_row(row) for row in rows], total)

    def count_tasks_by_phase(self) -> dict[models.TaskPhase, int]:
        rows = self._rows("SELECT phase, COUNT(*) AS n FROM tasks GROUP BY phase")
        return {models.TaskPhase(row["phase"]): int(row["n"]) for row in rows}

    def list_attempts(self, task_id: str) -> list[models.AttemptRecord]:
        rows = self._rows("SELECT * FROM attempts WHERE task_id = ? ORDER BY attempt", (task_id,))
        return [codec.attempt_from_row(row) for row in rows]

    def load_unfinished_tasks(self) -> list[models.TaskRecord]:
        rows = self._rows("SELECT * FROM tasks WHERE phase IN (?, ?, ?) ORDER BY seq", _UNFINISHED)
        return [codec.task_from_row(row) for row in rows]

    def load_workers(self) -> list[models.WorkerRecord]:
        return [codec.worker_from_row(row) for row in self._rows("SELECT * FROM workers")]

    def load_queue_usage(self) -> list[fairshare.SavedUsage]:
        rows = self._rows("SELECT * FROM queue_usage ORDER BY queue")
        return [codec.queue_usage_from_row(row) for row in rows]

    def max_seq(self) -> int:
        rows = self._rows("SELECT MAX(seq) AS top FROM tasks")
        return int(rows[0]["top"] or 0)

    def close(self) -> None:
        self._db.close()
