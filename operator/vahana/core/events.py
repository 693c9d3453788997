"""Which Kubernetes Events a Task gets: a pure function of what was last reported and what the
task is now, so that a task that changed several times between two status writes gets one
Event for where it is (and one for a retry), not one per step.

Reasons, as a user looks for them in `kubectl describe task`: Queued (with why it waits),
Scheduled (on which worker, which attempt), Started, Completed / Failed (exit code, or the limit
hit, in the message), Retrying (why the last attempt ended), Cancelled.
"""

from __future__ import annotations

import dataclasses

from vahana.core import models

P = models.TaskPhase
NORMAL, WARNING = "Normal", "Warning"


@dataclasses.dataclass(frozen=True)
class Seen:
    """What the Task's Events have said so far."""

    phase: models.TaskPhase
    attempt: int
    pending_reason: str = ""
    retried_through: int = 0
    """The last attempt whose end a Retrying event has told."""


@dataclasses.dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


def untold_retry(before: Seen | None, task: models.TaskRecord) -> int | None:
    """The attempt whose end a Retrying event is due to tell although the task no longer says
    why it ended (a new attempt began between two writes): its reason is in its attempt record."""
    if task.phase == P.PENDING:
        return None
    ended = task.attempt - 1
    told = before.retried_through if before is not None else 0
    return ended if ended > told else None


def task_events(
    before: Seen | None,
    task: models.TaskRecord,
    pending_reason: str,
    why_ended: str = "",
) -> tuple[list[Event], Seen]:
    """The Events to record for `task` now, and what they will have said. `why_ended` is the
    message of the attempt `untold_retry` named, read from its attempt record."""
    # Attempts that ended with the task going on: the one just requeued (PENDING again), and
    # any before the current one that ended between two writes.
    ended = task.attempt if task.phase == P.PENDING else task.attempt - 1
    told = before.retried_through if before is not None else 0
    now = Seen(
        task.phase,
        task.attempt,
        pending_reason if task.phase == P.PENDING else "",
        retried_through=max(told, ended),
    )
    if before == now:
        return [], now
    events: list[Event] = []
    if ended > told:
        why = (task.message if task.phase == P.PENDING else why_ended) or "it did not succeed"
        events.append(Event(WARNING, "Retrying", f"attempt {ended} ended: {why}"))
    if before is None and task.phase != P.PENDING:
        # Its whole run fell between two status writes: the story still starts with its queueing.
        events.append(Event(NORMAL, "Queued", "accepted by the scheduler"))
    if task.phase == P.PENDING:
        if (
            before is None
            or before.phase != P.PENDING
            or before.pending_reason != now.pending_reason
        ):
            events.append(Event(NORMAL, "Queued", pending_reason or "waiting for a worker"))
        return events, now
    elif task.phase in (P.ASSIGNED, P.RUNNING):
        if before is None or before.attempt != task.attempt or before.phase == P.PENDING:
            worker = task.worker_id or "?"
            events.append(
                Event(NORMAL, "Scheduled", f"on worker {worker} (attempt {task.attempt})")
            )
        if task.phase == P.RUNNING and (
            before is None or before.phase != P.RUNNING or before.attempt != task.attempt
        ):
            events.append(Event(NORMAL, "Started", f"running on worker {task.worker_id or '?'}"))
    elif task.phase == P.COMPLETED:
        events.extend(_unseen_start(task, before))
        events.append(Event(NORMAL, "Completed", _ended(task)))
    elif task.phase in (P.FAILED, P.TIMED_OUT):
        events.extend(_unseen_start(task, before))
        events.append(Event(WARNING, "Failed", _ended(task)))
    elif task.phase == P.UPSTREAM_FAILED:
        events.append(Event(WARNING, "UpstreamFailed", task.message))
    elif task.phase == P.CANCELLED:
        events.append(Event(NORMAL, "Cancelled", task.message or "cancelled"))
    return events, now


def _unseen_start(task: models.TaskRecord, before: Seen | None) -> list[Event]:
    """Scheduled for an attempt that started and ended between two writes, so that every
    ended attempt's story names its worker."""
    if not task.worker_id:
        return []
    if (
        before is not None
        and before.attempt == task.attempt
        and before.phase
        in (
            P.ASSIGNED,
            P.RUNNING,
        )
    ):
        return []
    return [Event(NORMAL, "Scheduled", f"on worker {task.worker_id} (attempt {task.attempt})")]


def _ended(task: models.TaskRecord) -> str:
    where = f" on worker {task.worker_id}" if task.worker_id else ""
    seconds = (
        f" after {task.finished_at - task.started_at:.1f}s"
        if task.finished_at is not None and task.started_at is not None
        else ""
    )
    code = f"exit code {task.exit_code}" if task.exit_code is not None else task.phase.value.lower()
    text = f"{code}{where}{seconds} (attempt {task.attempt})"
    return f"{text}: {task.message}" if task.message and task.phase != P.COMPLETED else text


def pool_events(before: dict[str, object], after: dict[str, object]) -> list[Event]:
    """A WorkerPool's Events from its last written status and its new one: Scaled when the
    number of workers it wants changes, StartFailed when a new error appears."""
    found: list[Event] = []
    old, new = before.get("desired"), after.get("desired")
    if isinstance(new, int) and old != new:
        was = old if isinstance(old, int) else 0
        if new > was:
            text = f"scaled up to {new} worker(s) (was {was}; {after.get('busy', 0)} busy)"
        else:
            text = f"scaled down to {new} worker(s) (was {was}; idle ones drain first)"
        found.append(Event(NORMAL, "Scaled", text))
    error = after.get("lastError")
    if error and error != before.get("lastError"):
        found.append(Event(WARNING, "StartFailed", str(error)))
    return found
