"""Attempt fencing: whether a worker's status report may change a task.

Every dispatch starts a new attempt; a report names the attempt it belongs to. Only the
current attempt, from the worker holding it, may move the task on. Replaying a report that
was already applied is harmless: it is acknowledged and changes nothing.
"""

from __future__ import annotations

import dataclasses
import enum

from vahana.core import models


class Verdict(enum.Enum):
    APPLY = "apply"
    DUPLICATE = "duplicate"  # already applied: acknowledge, change nothing
    REFUSE = "refuse"


@dataclasses.dataclass(frozen=True)
class Check:
    verdict: Verdict
    reason: str = ""


_ALLOWED: dict[models.TaskPhase, frozenset[models.TaskPhase]] = {
    # PENDING: the worker hands back a task it has not started.
    models.TaskPhase.ASSIGNED: frozenset(
        {models.TaskPhase.RUNNING, models.TaskPhase.PENDING} | models.FINAL_PHASES
    ),
    models.TaskPhase.RUNNING: frozenset({models.TaskPhase.RUNNING} | models.FINAL_PHASES),
}


def check_report(
    task: models.TaskRecord | None,
    *,
    worker_id: str,
    attempt: int,
    reported: models.TaskPhase,
) -> Check:
    if task is None:
        return Check(Verdict.REFUSE, "unknown task")
    if attempt != task.attempt or worker_id != task.worker_id:
        return Check(
            Verdict.REFUSE,
            f"stale attempt {attempt} from worker {worker_id}: the current attempt is "
            f"{task.attempt} on worker {task.worker_id or '(none)'}",
        )
    if task.phase.is_final or task.phase == models.TaskPhase.PENDING:
        if task.phase == reported or reported == models.TaskPhase.RUNNING:
            return Check(Verdict.DUPLICATE, f"task is already {task.phase.value}")
        return Check(Verdict.REFUSE, f"task is already {task.phase.value}")
    if reported not in _ALLOWED.get(task.phase, frozenset()):
        return Check(
            Verdict.REFUSE, f"cannot report {reported.value} for a task {task.phase.value}"
        )
    if reported == task.phase:
        return Check(Verdict.DUPLICATE)
    return Check(Verdict.APPLY)
