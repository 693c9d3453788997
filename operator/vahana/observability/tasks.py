"""Task metrics from the scheduler's change feed: transitions, failures, latencies.

`TaskObserver` is a scheduler listener: it sees every task change once, after it is committed,
and keeps a small record per unfinished task (its last phase, failure counts and when it became
ready) to turn changes into transitions. A method of the scheduler may change a task more than
once before listeners hear of it (RUNNING then COMPLETED in one report batch), so transitions are
judged from the record, never assumed one step at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from vahana.core import clock as clocks
from vahana.core import models
from vahana.observability import metrics as metrics_module

TASK_KIND = "task"
INFRASTRUCTURE_KIND = "infrastructure"
LIVE_PHASES = (models.TaskPhase.PENDING, models.TaskPhase.ASSIGNED, models.TaskPhase.RUNNING)


@dataclasses.dataclass(slots=True)
class _Seen:
    phase: models.TaskPhase
    attempt: int
    task_failures: int
    infra_failures: int
    ready_since: float
    """When the task last became PENDING (submitted or requeued), scheduler clock."""
    running: bool = False
    """RUNNING was seen for the current attempt."""


class TaskObserver:
    """Updates the task metrics from task changes; `phase_counts()` feeds the phase gauge."""

    def __init__(
        self, metrics: metrics_module.SchedulerMetrics, *, clock: clocks.Clock = clocks.system_clock
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._seen: dict[str, _Seen] = {}

    def seed(self, tasks: Iterable[models.TaskRecord]) -> None:
        """Records unfinished tasks that exist already (after a restart) without counting them."""
        now = self._clock()
        for task in tasks:
            if not task.is_final:
                self._seen[task.id] = self._record(task, ready_since=now)

    def phase_counts(self) -> dict[models.TaskPhase, int]:
        counts = dict.fromkeys(LIVE_PHASES, 0)
        for seen in self._seen.values():
            counts[seen.phase] = counts.get(seen.phase, 0) + 1
        return counts

    def __call__(self, task: models.TaskRecord) -> None:
        m = self._metrics
        now = self._clock()
        before = self._seen.get(task.id)
        if before is None:
            if task.phase == models.TaskPhase.PENDING and task.attempt == 0:
                m.tasks_submitted.inc()
            ready_since = max(task.created_at, task.not_before)
        else:
            self._count_failures(before, task)
            ready_since = before.ready_since
        phase = task.phase
        if phase == models.TaskPhase.PENDING:
            if before is not None and before.phase != models.TaskPhase.PENDING:
                kind = (
                    INFRASTRUCTURE_KIND
                    if task.infra_failures > before.infra_failures
                    else (TASK_KIND)
                )
                m.requeues.labels(kind).inc()
                ready_since = max(now, task.not_before)
        elif phase == models.TaskPhase.ASSIGNED and (
            before is None or before.phase == models.TaskPhase.PENDING
        ):
            assigned = task.assigned_at if task.assigned_at is not None else now
            m.dispatch_latency.observe(max(0.0, assigned - ready_since))
        if phase.is_final:
            self._seen.pop(task.id, None)
            m.tasks_completed.labels(phase.value).inc()
            if self._ran_this_attempt(before, task):
                assert task.started_at is not None
                finished = task.finished_at if task.finished_at is not None else now
                m.task_duration.labels(phase.value).observe(max(0.0, finished - task.started_at))
            return
        seen = self._record(task, ready_since=ready_since)
        seen.running = phase == models.TaskPhase.RUNNING or (
            phase.holds_lease
            and before is not None
            and before.running
            and before.attempt == task.attempt
        )
        self._seen[task.id] = seen

    def _count_failures(self, before: _Seen, task: models.TaskRecord) -> None:
        infra = task.infra_failures - before.infra_failures
        if infra > 0:
            self._metrics.attempt_failures.labels(INFRASTRUCTURE_KIND).inc(infra)
        failed = task.task_failures - before.task_failures
        if failed > 0:
            self._metrics.attempt_failures.labels(TASK_KIND).inc(failed)

    @staticmethod
    def _ran_this_attempt(before: _Seen | None, task: models.TaskRecord) -> bool:
        if task.started_at is None:
            return False
        if before is not None and before.running and before.attempt == task.attempt:
            return True
        # RUNNING and the end may arrive in one batch: the start then belongs to this attempt
        # if it is not older than the assignment.
        return task.assigned_at is not None and task.started_at >= task.assigned_at

    @staticmethod
    def _record(task: models.TaskRecord, *, ready_since: float) -> _Seen:
        return _Seen(
            phase=task.phase,
            attempt=task.attempt,
            task_failures=task.task_failures,
            infra_failures=task.infra_failures,
            ready_since=ready_since,
        )
