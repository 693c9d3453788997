"""What happens to a task and a worker, the steps the decisions share: an attempt begins and
ends, a task finishes or goes back to the queue, a worker's state follows its leases, a lost or
removed worker's tasks are requeued. Like the decisions, every change goes through the
operation's `tables.Change`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from vahana.core import matching, models, quarantine, retry
from vahana.scheduling import records, tables, waits

P = models.TaskPhase
W = models.WorkerState

_FINAL_FROM_REPORT = {P.COMPLETED, P.FAILED, P.TIMED_OUT, P.CANCELLED}


def fits(
    worker: models.WorkerRecord, now: float
) -> Callable[[models.Resources, models.TaskRecord], bool]:
    """Whether a task fits the worker with `free` resources left."""

    def fits(free: models.Resources, task: models.TaskRecord) -> bool:
        return (
            (not task.pool or task.pool == worker.pool)
            and matching.could_ever_fit(task.spec.resources, worker)
            and matching.fits_now(task.spec.resources, free, worker)
            and not matching.outlives_allocation(task.spec.timeout_seconds, worker, now)
        )

    return fits


def may_prefetch(live: tables.Tables, worker: models.WorkerRecord) -> bool:
    """Whether a worker whose slots are full may take one more task to queue (`poll` bounds
    how many by its prefetch): only while the queue holds more tasks than the other workers'
    slots, which leaves those for them (a task queued behind another waits; an idle worker
    would start it at once)."""
    return len(live.queue) > live.all_slots - worker.max_tasks


def assign(
    change: tables.Change, task: models.TaskRecord, worker: models.WorkerRecord
) -> models.TaskRecord:
    now = change.now
    task = change.edit_task(task)
    task.attempt += 1
    task.phase = P.ASSIGNED
    task.worker_id = worker.id
    task.assigned_at = now
    task.pending_reason = ""
    task.output_log = ""  # the latest attempt's, once it ends
    worker.leases[task.id] = task.attempt
    change.hold(task, worker.pool)
    change.put_attempt(
        models.AttemptRecord(
            task_id=task.id, attempt=task.attempt, worker_id=worker.id, assigned_at=now
        )
    )
    change.plan.log(
        "dispatched task_id=%s attempt=%d worker_id=%s", task.id, task.attempt, worker.id
    )
    return task


def apply_report(
    change: tables.Change,
    task: models.TaskRecord,
    item: records.StatusReport,
    policy: quarantine.QuarantinePolicy,
) -> models.TaskRecord:
    at = item.timestamp or change.now
    task = change.edit_task(task)
    if item.output_tail:
        task.output_tail = item.output_tail
    if item.output_log:
        task.output_log = item.output_log
    if item.phase == P.RUNNING:
        task.phase = P.RUNNING
        task.started_at = at
        attempt = change.edit_attempt(current_attempt(change, task))
        attempt.phase, attempt.started_at = P.RUNNING, at
        return task
    if item.phase == P.PENDING:
        message = item.message or "handed back by the worker before it started"
        end_attempt(change, task, P.PENDING, message=message)
        return task
    task.exit_code = item.exit_code
    if item.phase == P.COMPLETED:
        judge_worker(change, task, failed_in_worker=False, message=item.message, policy=policy)
        end_attempt(change, task, P.COMPLETED, message=item.message)
        return task
    kind = item.failure_kind or models.FailureKind.TASK_ERROR
    worker_id = task.worker_id
    if item.phase == P.CANCELLED:  # says nothing of the worker's health
        end_attempt(change, task, item.phase, kind=kind, message=item.message)
        return task
    verdict = judge_worker(
        change,
        task,
        failed_in_worker=kind == models.FailureKind.INFRASTRUCTURE,
        message=item.message,
        policy=policy,
    )
    charge = verdict is None or verdict.charge
    end_attempt(change, task, item.phase, kind=kind, message=item.message, charge=charge)
    if verdict is not None and verdict.quarantine_reason:
        quarantine_worker(change, worker_id, verdict)
    return task


def judge_worker(
    change: tables.Change,
    task: models.TaskRecord,
    *,
    failed_in_worker: bool,
    message: str,
    policy: quarantine.QuarantinePolicy,
) -> quarantine.Verdict | None:
    """Updates the reporting worker's streak of infrastructure failures; None when it does
    not count (no such worker, or it is draining: its tasks fail because it leaves)."""
    worker = change.tables.workers.get(task.worker_id)
    if worker is None or worker.state in (W.DRAINING, W.UNHEALTHY):
        return None
    if worker.id in change.tables.drain_requested:
        return None
    verdict = quarantine.judge(
        worker.streak,
        task_id=task.id,
        failed_in_worker=failed_in_worker,
        now=change.now,
        message=message,
        policy=policy,
    )
    if verdict.streak != worker.streak:
        change.edit_worker(worker).streak = verdict.streak
    return verdict


def quarantine_worker(change: tables.Change, worker_id: str, verdict: quarantine.Verdict) -> None:
    """No more tasks for the worker: UNHEALTHY with the reason; its other tasks run elsewhere
    and, like the ones it failed, spend no retry budget (the streak's first charge is given
    back to its task if that one is still queued)."""
    live = change.tables
    worker = change.edit_worker(live.workers[worker_id])
    worker.quarantine_reason = verdict.quarantine_reason
    worker.state = W.UNHEALTHY
    worker.unhealthy_since = change.now
    change.set_drain(worker.id, False)
    change.plan.hooks.append(("quarantined", worker))
    change.plan.log(
        "quarantined worker_id=%s pool=%s: %s",
        worker.id,
        worker.pool or "-",
        verdict.quarantine_reason,
        level=logging.WARNING,
    )
    for task_id in list(worker.leases):
        lose(change, live.tasks[task_id], f"worker {worker.id} was quarantined", charge=False)
    for task_id in verdict.refund:
        task = live.tasks.get(task_id)
        if task is None or task.phase != P.PENDING or task.infra_failures <= 0:
            continue
        change.unqueue(task_id)
        task = change.edit_task(task)
        task.infra_failures -= 1
        change.push(task)
    change.save_worker(live.workers[worker.id])


def current_attempt(change: tables.Change, task: models.TaskRecord) -> models.AttemptRecord:
    """The task's current attempt record (made anew if memory lost it)."""
    found = change.tables.attempts.get((task.id, task.attempt))
    if found is None:
        found = models.AttemptRecord(
            task_id=task.id,
            attempt=task.attempt,
            worker_id=task.worker_id,
            assigned_at=task.assigned_at or change.now,
        )
        change.put_attempt(found)
    return found


def lose(
    change: tables.Change, task: models.TaskRecord, reason: str, *, charge: bool = True
) -> None:
    """Ends the current attempt as lost to the infrastructure (worker gone, restarted…)."""
    task = change.edit_task(task)
    end_attempt(
        change,
        task,
        P.FAILED,
        kind=models.FailureKind.INFRASTRUCTURE,
        message=reason,
        charge=charge,
    )


def end_attempt(
    change: tables.Change,
    task: models.TaskRecord,
    phase: models.TaskPhase,
    *,
    kind: models.FailureKind | None = None,
    message: str = "",
    charge: bool = True,
) -> None:
    """Closes the current attempt of `task` (a copy this change owns), then finishes the task
    or puts it back in the queue. `charge`: a failure spends the task's retry budget."""
    now, live = change.now, change.tables
    attempt = change.edit_attempt(current_attempt(change, task))
    attempt.phase, attempt.finished_at = phase, now
    attempt.exit_code, attempt.failure_kind, attempt.message = task.exit_code, kind, message
    change.drop_attempt((task.id, task.attempt))
    change.release(task)
    worker = live.workers.get(task.worker_id)
    if worker is not None:
        if task.id in worker.leases:
            worker = change.edit_worker(worker)
            del worker.leases[task.id]
        refresh_state(change, worker)
        change.plan.freed.add(worker.id)
    change.discard_cancel(task.worker_id, (task.id, task.attempt))
    if phase == P.COMPLETED:
        finish(change, task, phase, message=message)
    elif task.cancel_requested:
        finish(change, task, P.CANCELLED, message=task.message or message)
    elif phase == P.CANCELLED:
        finish(change, task, phase, message=message or "cancelled by the worker")
    elif phase == P.PENDING:  # handed back unstarted: no failure, no backoff
        requeue(change, task, message, not_before=0.0)
    else:
        if not charge:
            pass
        elif kind == models.FailureKind.INFRASTRUCTURE:
            task.infra_failures += 1
        else:
            task.task_failures += 1
        decision = retry.after_failure(task, kind or models.FailureKind.TASK_ERROR, now)
        if not decision.retry:
            final = phase if phase in _FINAL_FROM_REPORT else P.FAILED
            finish(change, task, final, message=f"{message} ({decision.reason})".strip())
        else:
            requeue(change, task, message, decision.reason, not_before=decision.not_before)


def requeue(
    change: tables.Change,
    task: models.TaskRecord,
    message: str,
    decision: str = "",
    *,
    not_before: float,
) -> None:
    change.plan.log(
        "requeued task_id=%s attempt=%d reason=%r %s", task.id, task.attempt, message, decision
    )
    task.phase = P.PENDING
    task.worker_id = ""
    task.not_before = not_before
    task.message = message
    change.push(task)
    change.plan.emit(task)
    change.plan.wake.add(None)


def finish(
    change: tables.Change, task: models.TaskRecord, phase: models.TaskPhase, *, message: str = ""
) -> None:
    task.phase = phase
    task.finished_at = change.now
    task.message = message
    change.finish_task(task)
    change.plan.log(
        "finished task_id=%s status=%s exit_code=%s attempt=%d",
        task.id,
        phase.value,
        task.exit_code,
        task.attempt,
    )
    change.plan.emit(task)
    # Its dependents hear of it in this same plan: committed with its end, or not at all.
    for dependent, reason in waits.ended(change, task):
        finish(change, dependent, P.UPSTREAM_FAILED, message=reason)


def mark_unhealthy(change: tables.Change, worker: models.WorkerRecord, reason: str) -> None:
    worker = change.edit_worker(worker)
    worker.state = W.UNHEALTHY
    if worker.unhealthy_since is None:
        worker.unhealthy_since = change.now  # check_health counts the removal delay from here
    change.set_drain(worker.id, False)
    change.plan.hooks.append(("unhealthy", worker))
    for task_id in list(worker.leases):
        lose(change, change.tables.tasks[task_id], reason)
    change.save_worker(change.tables.workers[worker.id])


def remove_worker(change: tables.Change, worker: models.WorkerRecord, reason: str) -> None:
    live = change.tables
    for task_id in list(worker.leases):
        lose(change, live.tasks[task_id], reason)
    change.delete_worker(worker.id)
    change.set_drain(worker.id, False)
    change.pop_cancels(worker.id)
    change.plan.removed.append(worker.id)
    change.plan.log("removed worker_id=%s: %s", worker.id, reason)


def refresh_state(change: tables.Change, worker: models.WorkerRecord) -> models.WorkerRecord:
    """Brings idle_since and AVAILABLE/BUSY in line with the worker's leases."""
    idle_since = None if worker.leases else worker.idle_since
    if idle_since is None and not worker.leases:
        idle_since = change.now
    state = worker.state
    if state in (W.AVAILABLE, W.BUSY):
        state = W.BUSY if len(worker.leases) >= worker.max_tasks else W.AVAILABLE
    if idle_since == worker.idle_since and state == worker.state:
        return worker
    worker = change.edit_worker(worker)
    worker.idle_since, worker.state = idle_since, state
    return worker
