"""The store interface the scheduler writes through.

The scheduler's writes reach the store as `batch.Batch`es, one transaction each (`writer.Writer`
groups the batches of several scheduler operations into one); a restarted scheduler rebuilds
its queue and leases from `load_unfinished_tasks()` and `load_workers()`, and each queue's
decayed usage in the fair share from `load_queue_usage()`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Protocol

from vahana.core import fairshare, models


class StoreUnavailable(RuntimeError):
    """The database cannot be used: unreachable, driver missing, connection lost, disk full.

    The message names the store (never its password) and says what to do; callers treat it as
    fatal for the call in progress, which may be tried again (gRPC UNAVAILABLE).
    """


@dataclasses.dataclass(frozen=True)
class TaskQuery:
    """One page of tasks for people (the dashboard), newest first."""

    phases: tuple[models.TaskPhase, ...] = ()
    """Any of these phases; empty: every phase."""
    pool: str | None = None
    """Exactly this pool ("" for tasks that name none); None: any pool."""
    search: str = ""
    """Part of the name (any case), or the whole id."""
    offset: int = 0
    limit: int = 50


@dataclasses.dataclass(frozen=True)
class TaskPage:
    tasks: list[models.TaskRecord]
    total: int
    """Tasks matching the query, on every page."""


class Store(Protocol):
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Groups the writes made inside into one commit; nested use joins the outer one."""

    def insert_tasks(self, tasks: Sequence[models.TaskRecord]) -> None: ...

    def update_tasks(self, tasks: Sequence[models.TaskRecord]) -> None:
        """Writes the mutable fields of tasks already inserted."""

    def save_attempts(self, attempts: Sequence[models.AttemptRecord]) -> None:
        """Inserts or replaces attempts by (task_id, attempt)."""

    def save_workers(self, workers: Sequence[models.WorkerRecord]) -> None: ...

    def delete_workers(self, worker_ids: Sequence[str]) -> None: ...

    def save_queue_usage(self, usages: Sequence[fairshare.SavedUsage]) -> None:
        """Inserts or replaces each queue's decayed usage, by queue name."""

    def get_task(self, task_id: str) -> models.TaskRecord | None: ...

    def find_tasks_by_name(self, name: str) -> list[models.TaskRecord]: ...
    def find_array_instances(self, name: str) -> list[models.TaskRecord]:
        """Tasks named `name[i]` (the instances of arrays named `name`), in submission order."""
        ...

    def find_task_ids_by_keys(self, keys: Sequence[str]) -> dict[str, str]: ...

    def list_tasks(
        self,
        *,
        phase: models.TaskPhase | None = None,
        namespace: str | None = None,
        ids: Sequence[str] = (),
        limit: int = 0,
        after_seq: int = 0,
    ) -> list[models.TaskRecord]:
        """Oldest first; only tasks submitted after the one with `after_seq` (a page's cursor)."""

    def page_tasks(self, query: TaskQuery) -> TaskPage: ...

    def count_tasks_by_phase(self) -> dict[models.TaskPhase, int]: ...

    def list_attempts(self, task_id: str) -> list[models.AttemptRecord]: ...

    def load_unfinished_tasks(self) -> list[models.TaskRecord]: ...

    def load_workers(self) -> list[models.WorkerRecord]: ...

    def load_queue_usage(self) -> list[fairshare.SavedUsage]:
        """Every queue's decayed usage as last saved, by queue name."""

    def max_seq(self) -> int: ...

    def check_writable(self) -> None:
        """A tiny write that changes nothing; raises `StoreUnavailable` while writes fail."""

    def close(self) -> None: ...


def chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def redact_url(url: str) -> str:
    """The URL with any password (in the user part or a `password=` parameter) masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<store URL>"
    rest, question, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:***@{hostport}"
    parameters = [
        "password=***" if item.partition("=")[0].lower() == "password" else item
        for item in query.split("&")
    ]
    return f"{scheme}://{authority}{slash}{path}{question}{'&'.join(parameters)}"
