"""A plan: what one scheduler operation decided, as records to write and effects to let out.

A plan is built by the operation's decision (`decisions`, through a `tables.Change`), committed
by the store writer, and only then published: its listeners' events, worker hooks,
removal listeners and log lines leave the scheduler after the store holds its records (its
wake-ups of waiting polls go at once, with a writer: `scheduler.Scheduler._decide`). If the
commit fails, `undo` puts memory back as it was and nothing of the plan is ever told (a poll it
woke was decided on it and is rolled back with it).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import Any

from vahana.core import models
from vahana.store import batch as batches
from vahana.store import writer


class State(enum.Enum):
    DECIDED = "decided"
    """In memory, waiting for its commit: nothing of it has been told."""
    COMMITTED = "committed"
    """In the store; published."""
    ROLLED_BACK = "rolled back"
    """Undone in memory: its commit (or one it depended on) failed."""


LogLine = tuple[int, str, tuple[Any, ...]]
Undo = tuple[Any, ...]
"""(kind, key, the version replaced): see `tables.Tables.revert`."""
Key = tuple[str, ...]
"""A record a plan changed or read: ("task", id), ("worker", id), ("usage", queue), ("seq",)
or ("usage saved",)."""

_KEY_KINDS = {
    "task": "task",
    "queued": "task",
    "attempt": "task",
    "worker": "worker",
    "cancels": "worker",
    "drain": "worker",
    "usage": "usage",
    "saved": "usage",
    "waiting": "task",
    "dependents": "task",
}


def touched(undo: list[Undo]) -> set[Key]:
    """The records a plan changed, from what it replaced."""
    keys: set[Key] = set()
    for kind, *rest in undo:
        if kind == "seq":
            keys.add(("seq",))
        elif kind == "saved at":
            keys.add(("usage saved",))
        elif kind == "attempt":
            keys.add(("task", rest[0][0]))
        else:
            keys.add((_KEY_KINDS[kind], rest[0]))
    return keys


@dataclasses.dataclass(eq=False)
class Plan:
    operation: str
    """Which public operation decided it (for logs)."""
    batch: batches.Batch = dataclasses.field(default_factory=batches.Batch)
    emitted: dict[str, models.TaskRecord] = dataclasses.field(default_factory=dict)
    """Tasks whose change listeners hear of, in their version at the end of the operation."""
    wake: set[str | None] = dataclasses.field(default_factory=set)
    """Workers whose long poll should look again (None: every waiting worker)."""
    freed: set[str] = dataclasses.field(default_factory=set)
    """Workers a lease of which ended: woken if they have a free slot once published."""
    hooks: list[tuple[str, models.WorkerRecord]] = dataclasses.field(default_factory=list)
    """Worker events for counters: ("heartbeat" | "unhealthy", worker)."""
    removed: list[str] = dataclasses.field(default_factory=list)
    """Workers removed: the removal listeners hear of them (tokens revoked)."""
    logs: list[LogLine] = dataclasses.field(default_factory=list)
    result: Any = None
    """What the operation answers its caller."""
    undo: list[Undo] = dataclasses.field(default_factory=list)
    """The versions this plan replaced in memory, in the order it replaced them."""
    reads: frozenset[Key] | None = None
    """What the decision read, when it can tell (None: anything): a plan that changes
    nothing waits only for the uncommitted plans that changed these."""
    followers: list[Plan] = dataclasses.field(default_factory=list)
    """Plans that changed nothing and read what this one changed: told after it."""
    serial: int = 0
    """Its place in the order of decisions (set when it is sent on its way)."""
    keys: set[Key] = dataclasses.field(default_factory=set)
    """The records it changed (set when it is sent on its way to the writer)."""
    finals: int = 0
    """Tasks this plan finished (kept in memory's finished tasks)."""
    state: State = State.DECIDED
    error: BaseException | None = None
    ticket: writer.Ticket | None = None
    """The writer's ticket of its batch, or of the plan before it when it writes nothing."""
    waiter: Any = None
    """An asyncio future of a caller awaiting the commit."""

    def emit(self, task: models.TaskRecord) -> None:
        self.emitted[task.id] = task

    def log(self, message: str, *args: Any, level: int = logging.INFO) -> None:
        """A log line written when the plan is committed (never for one rolled back)."""
        self.logs.append((level, message, args))
