"""The retry policy: after a failed attempt, rerun (after a backoff) or give up.

Two budgets: task failures (the command failed) and infrastructure failures (the worker was
lost or its allocation ended). A flaky cluster must not use up a task's own retries.
"""

from __future__ import annotations

import dataclasses

from vahana.core import models


@dataclasses.dataclass(frozen=True)
class Decision:
    retry: bool
    not_before: float = 0.0
    reason: str = ""


def after_failure(task: models.TaskRecord, kind: models.FailureKind, now: float) -> Decision:
    """Decides on a task whose failure of `kind` has already been counted on the record."""
    policy = task.retry
    if kind == models.FailureKind.INFRASTRUCTURE:
        used, budget, what = task.infra_failures, policy.max_infra_retries, "infrastructure"
    else:
        used, budget, what = task.task_failures, policy.max_task_retries, "task"
    if used > budget:
        return Decision(False, reason=f"{what} retries exhausted ({used - 1} of {budget} used)")
    failures = task.task_failures + task.infra_failures
    if kind == models.FailureKind.INFRASTRUCTURE:
        # The task was not at fault: the first time its worker is lost it reruns at once
        # elsewhere; only repeated losses (a task that takes its workers down?) back off.
        failures -= 1
    delay = backoff_seconds(policy, failures)
    return Decision(True, now + delay, f"retry {used} of {budget} after {kind.value.lower()}")


def backoff_seconds(policy: models.RetryPolicy, failures: int) -> float:
    if failures <= 0 or policy.backoff_seconds <= 0:
        return 0.0
    return float(min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** (failures - 1)))
