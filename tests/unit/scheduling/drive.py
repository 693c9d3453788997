"""Helpers that drive a Scheduler in tests: submit builders, register, poll, report."""

from __future__ import annotations

from builders import RegistrationBuilder, TaskBuilder
from vahana.core import models
from vahana.scheduling import records, scheduler


def submit(sched: scheduler.Scheduler, *tasks: TaskBuilder) -> list[str]:
    return sched.submit([t.submission() for t in tasks])


def register(sched: scheduler.Scheduler, *workers: RegistrationBuilder) -> None:
    for worker in workers:
        assert sched.register(worker.registration()) == []


def poll_ids(sched: scheduler.Scheduler, worker_id: str, max_tasks: int = 10) -> list[str]:
    return [t.id for t in sched.poll(worker_id, max_tasks).tasks]


def report(
    sched: scheduler.Scheduler,
    worker_id: str,
    task_id: str,
    attempt: int,
    phase: models.TaskPhase,
    **fields,
) -> records.ReportResult:
    [result] = sched.report(worker_id, [records.StatusReport(task_id, attempt, phase, **fields)])
    return result


def heartbeat(sched: scheduler.Scheduler, worker_id: str, *running: tuple[str, int]):
    return sched.heartbeat(worker_id, models.WorkerMetrics(), running)
