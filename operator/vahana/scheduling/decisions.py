"""The scheduler's decisions: each operation as a function of the tables, its input and `now`.

A decision reads `change.tables` and changes them only through `change` (copies installed,
replaced versions noted), so that what it decided is its plan (`change.plan`): the records to
write, and the effects — listener events, wake-ups, hooks, log lines — to let out once the
store holds them. No I/O here: the store is read before (`stored`, `known`) and written after.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from vahana.core import clock as clocks
from vahana.core import leases, matching, models, retry
from vahana.scheduling import records, tables

P = models.TaskPhase
W = models.WorkerState

_FINAL_FROM_REPORT = {P.COMPLETED, P.FAILED, P.TIMED_OUT, P.CANCELLED}


# -- clients -------------------------------------------------------------------------------------
def submit(
    change: tables.Change,
    submissions: Sequence[models.Submission],
    known: Mapping[str, str],
    new_task_id: clocks.IdFactory,
) -> list[str]:
    """Accepts tasks; a key already known (`known`: from the store) returns that task's id."""
    ids: list[str] = []
    keys = change.tables.keys
    plan = change.plan
    for submission in submissions:
        if submission.key:
            existing = keys.get(submission.key) or known.get(submission.key)
            if existing:
                ids.append(existing)
                continue
        task = models.TaskRecord(
            id=new_task_id(),
            spec=submission.spec,
            created_at=change.now,
            seq=change.next_seq(),
            key=submission.key,
            retry=submission.retry,
            pool=submission.pool,
            namespace=submission.namespace,
        )
        change.insert_task(task)
        change.push(task)
        plan.emit(task)
        plan.log("accepted task_id=%s name=%s pool=%s", task.id, task.spec.name, task.pool or "-")
        ids.append(task.id)
    if plan.emitted:
        plan.wake.add(None)
    return ids


def cancel(change: tables.Change, task_id: str, reason: str) -> tuple[bool, models.TaskPhase]:
    """Cancels a live task; a running attempt is stopped on its worker. False if final."""
    task = change.tables.task(task_id)
    if task is None:
        raise records.UnknownTask(f"no task with id {task_id!r}")
    if task.is_final:
        return False, task.phase
    task = change.edit_task(task)
    task.cancel_requested = True
    message = f"cancelled: {reason}" if reason else "cancelled"
    if task.phase == P.PENDING:
        change.unqueue(task.id)
        _finish(change, task, P.CANCELLED, message=message)
    else:
        task.message = message
        change.add_cancel(task.worker_id, (task.id, task.attempt))
        change.plan.wake.add(task.worker_id)
    change.plan.log("cancel requested task_id=%s phase=%s", task.id, task.phase.value)
    change.plan.emit(task)
    return True, task.phase


# -- workers -------------------------------------------------------------------------------------
def register(change: tables.Change, registration: records.Registration) -> list[records.Lease]:
    """Adds or re-admits a worker; returns the leases it reported that are no longer its."""
    now, live = change.now, change.tables
    earlier = live.workers.get(registration.worker_id)
    previous = dict(earlier.leases) if earlier else {}
    worker = models.WorkerRecord(
        id=registration.worker_id,
        capacity=registration.capacity,
        max_tasks=max(1, registration.max_tasks),
        registered_at=earlier.registered_at if earlier else now,
        last_seen=now,
        pool=registration.pool,
        hostname=registration.hostname,
        allocation_ends_at=registration.allocation_ends_at,
        experiment_id=registration.experiment_id,
        compute_resource_id=registration.compute_resource_id,
        metrics=earlier.metrics if earlier else models.WorkerMetrics(),
        last_heartbeat=now,
        prefetch=max(0, registration.prefetch),
    )
    revoked: list[records.Lease] = []
    for task_id, attempt in registration.running:
        task = live.tasks.get(task_id)
        if (
            task is not None
            and task.phase.holds_lease
            and task.worker_id == worker.id
            and task.attempt == attempt
        ):
            worker.leases[task_id] = attempt
        else:
            revoked.append((task_id, attempt))
    change.put_worker(worker, save=True)
    # Leases the worker no longer holds died with its previous incarnation.
    for task_id, attempt in previous.items():
        task = live.tasks.get(task_id)
        if task_id not in worker.leases and task is not None and task.attempt == attempt:
            _lose(change, task, f"worker {worker.id} restarted without it")
    _refresh_state(change, live.workers[worker.id])
    change.plan.log(
        "registered worker_id=%s pool=%s slots=%d cpu=%g renewed=%d revoked=%d",
        worker.id,
        worker.pool or "-",
        worker.max_tasks,
        worker.capacity.cpu_cores,
        len(worker.leases),
        len(revoked),
    )
    change.plan.wake.add(worker.id)
    return revoked


def poll(change: tables.Change, worker_id: str, max_tasks: int) -> records.PollResult:
    """Hands out up to `max_tasks` tasks that fit the worker, plus its control messages."""
    live, now = change.tables, change.now
    worker = live_worker(live, worker_id)
    live.seen(worker, now)
    result = records.PollResult()
    result.cancels = sorted(change.pop_cancels(worker_id))
    result.drain = worker_id in live.drain_requested
    if worker.state == W.DRAINING or result.drain or max_tasks <= 0:
        return result
    if live.queue.promote_due(now):
        change.plan.wake.add(None)
    slots = min(max_tasks, worker.max_tasks + worker.prefetch - len(worker.leases))
    if slots <= 0 or not len(live.queue):
        return result
    free = matching.free_capacity(
        worker, (live.tasks[t].spec.resources for t in worker.leases if t in live.tasks)
    )
    labels = worker.capacity.labels
    fits = _fits(worker, now)
    while slots > 0 and (len(worker.leases) < worker.max_tasks or _may_prefetch(live, worker)):
        task = change.take(
            accept=functools.partial(fits, free),
            rank=lambda t: matching.locality_rank(t.spec.resources.preferred_labels, labels),
        )
        if task is None:
            break
        need = task.spec.resources
        free = models.Resources(
            free.cpu_cores - need.cpu_cores,
            free.memory_bytes - need.memory_bytes,
            free.gpus - need.gpus,
            free.labels,
        )
        worker = change.edit_worker(worker)
        result.tasks.append(_assign(change, task, worker))
        slots -= 1
    if result.tasks:
        _refresh_state(change, worker)
        for task in result.tasks:
            change.plan.emit(task)
    return result


def report(
    change: tables.Change,
    worker_id: str,
    reports: Sequence[records.StatusReport],
    stored: Mapping[str, models.TaskRecord | None],
) -> list[records.ReportResult]:
    """Applies status reports; each is fenced by its attempt and judged on its own.

    `stored`: the tasks named by reports that are not in memory, as the store has them
    (finished long ago, or unknown)."""
    live, now = change.tables, change.now
    worker = live.workers.get(worker_id)
    if worker is not None and worker.state != W.UNHEALTHY:
        live.seen(worker, now)
    results: list[records.ReportResult] = []
    for item in reports:
        task = live.task(item.task_id) or stored.get(item.task_id)
        check = leases.check_report(
            task, worker_id=worker_id, attempt=item.attempt, reported=item.phase
        )
        if check.verdict == leases.Verdict.REFUSE:
            change.plan.log(
                "refused report task_id=%s attempt=%d worker_id=%s status=%s: %s",
                item.task_id,
                item.attempt,
                worker_id,
                item.phase.value,
                check.reason,
                level=logging.WARNING,
            )
            results.append(
                records.ReportResult(item.task_id, item.attempt, False, check.reason, stale=True)
            )
            continue
        assert task is not None
        if check.verdict == leases.Verdict.APPLY:
            task = _apply_report(change, task, item)
            change.plan.emit(task)
        cancel = task.cancel_requested and not task.is_final
        results.append(
            records.ReportResult(item.task_id, item.attempt, True, check.reason, cancel=cancel)
        )
    if worker_id in live.workers:
        _refresh_state(change, live.workers[worker_id])
    return results


def report_and_poll(
    change: tables.Change,
    worker_id: str,
    reports: Sequence[records.StatusReport],
    stored: Mapping[str, models.TaskRecord | None],
    max_tasks: int,
) -> tuple[list[records.ReportResult], records.PollResult]:
    """`report()`, then `poll()` for up to `max_tasks` tasks (none if 0, or if the worker is
    unknown: reports are fenced by lease, not by registration), as one unit."""
    results = report(change, worker_id, reports, stored)
    handed_out = records.PollResult()
    worker = change.tables.workers.get(worker_id)
    if max_tasks > 0 and worker is not None and worker.state != W.UNHEALTHY:
        handed_out = poll(change, worker_id, max_tasks)
    return results, handed_out


def heartbeat(
    change: tables.Change,
    worker_id: str,
    metrics: models.WorkerMetrics,
    running: Iterable[records.Lease],
    assignment_grace: float,
) -> records.HeartbeatResult:
    live, now = change.tables, change.now
    worker = live.workers.get(worker_id)
    if worker is None or worker.state == W.UNHEALTHY:
        change.plan.reads = frozenset({("worker", worker_id)})
        return records.HeartbeatResult(reregister=True)
    live.seen(worker, now)
    worker.last_heartbeat = now  # liveness, like last_seen: observed, never undone
    worker.metrics = metrics
    change.plan.hooks.append(("heartbeat", worker))
    result = records.HeartbeatResult(drain=worker_id in live.drain_requested)
    held = dict(running)
    for task_id, attempt in held.items():
        task = live.tasks.get(task_id)
        current = task is not None and task.worker_id == worker_id and task.attempt == attempt
        if not current or (task is not None and task.cancel_requested):
            result.cancels.append((task_id, attempt))
    lost = [
        live.tasks[task_id]
        for task_id, attempt in worker.leases.items()
        if held.get(task_id) != attempt
        and now - (live.tasks[task_id].assigned_at or now) > assignment_grace
    ]
    for task in lost:
        _lose(change, task, f"worker {worker_id} no longer holds it")
    # The answer rests on the worker and the tasks it holds or should hold, nothing else: it
    # need not wait for the commit of anything else (a large submission, say).
    change.plan.reads = frozenset(
        {("worker", worker_id), *(("task", t) for t in held), *(("task", t) for t in worker.leases)}
    )
    return result


def set_worker_status(
    change: tables.Change, worker_id: str, state: models.WorkerState, reason: str
) -> None:
    live, now = change.tables, change.now
    worker = live.workers.get(worker_id)
    if worker is None:
        raise records.UnknownWorker(f"worker {worker_id!r} is not registered")
    live.seen(worker, now)
    change.plan.log("worker_id=%s reports %s %s", worker_id, state.value, reason)
    if state == W.TERMINATED:
        _remove_worker(change, worker, f"worker {worker_id} terminated {reason}".strip())
        return
    if state == W.UNHEALTHY:
        # As if it had gone silent: it gets no more work, and its tasks run elsewhere.
        _mark_unhealthy(change, worker, f"worker {worker_id} reported itself unhealthy {reason}")
        return
    worker = change.edit_worker(worker)
    if state == W.DRAINING:
        worker.state = state
    else:
        worker = _refresh_state(change, worker)
    change.save_worker(worker)


def request_drain(change: tables.Change, worker_id: str) -> None:
    """Asks a worker to finish its tasks and leave (pool scale-down)."""
    worker = change.edit_worker(live_worker(change.tables, worker_id))
    change.set_drain(worker_id, True)
    worker.state = W.DRAINING
    change.save_worker(worker)
    change.plan.wake.add(worker_id)


def check_health(change: tables.Change, settings: records.SchedulerSettings) -> None:
    """Marks silent workers UNHEALTHY and requeues their tasks; removes long-dead ones."""
    live, now = change.tables, change.now
    limit = settings.silence_limit_seconds
    for worker in list(live.workers.values()):
        if worker.state == W.UNHEALTHY:
            since = worker.unhealthy_since if worker.unhealthy_since is not None else now
            if now - since >= settings.removal_after_unhealthy_seconds:
                _remove_worker(change, worker, "worker removed after being unhealthy")
            continue
        silent = now - worker.last_seen
        if silent >= limit:
            change.plan.log(
                "worker unhealthy worker_id=%s silent_for=%.1fs tasks=%d",
                worker.id,
                silent,
                len(worker.leases),
                level=logging.WARNING,
            )
            _mark_unhealthy(
                change, worker, f"worker {worker.id} lost: no heartbeat for {silent:.0f}s"
            )
    if live.queue.promote_due(now):
        change.plan.wake.add(None)


def recover_orphans(change: tables.Change, orphans: Sequence[str]) -> None:
    """After a restart: tasks whose worker is gone or unhealthy are lost; worker states are
    brought in line with the leases found."""
    live = change.tables
    for task_id in orphans:
        task = live.tasks[task_id]
        _lose(change, task, f"worker {task.worker_id} is gone")
    for worker in list(live.workers.values()):
        _refresh_state(change, worker)


def live_worker(live: tables.Tables, worker_id: str) -> models.WorkerRecord:
    worker = live.workers.get(worker_id)
    if worker is None or worker.state == W.UNHEALTHY:
        raise records.UnknownWorker(f"worker {worker_id!r} is not registered: register again")
    return worker


# -- the steps they share ------------------------------------------------------------------------
def _fits(
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


def _may_prefetch(live: tables.Tables, worker: models.WorkerRecord) -> bool:
    """Whether a worker whose slots are full may take one more task to queue (`poll` bounds
    how many by its prefetch): only while the queue holds more tasks than the other workers'
    slots, which leaves those for them (a task queued behind another waits; an idle worker
    would start it at once)."""
    return len(live.queue) > live.all_slots - worker.max_tasks


def _assign(
    change: tables.Change, task: models.TaskRecord, worker: models.WorkerRecord
) -> models.TaskRecord:
    now = change.now
    task = change.edit_task(task)
    task.attempt += 1
    task.phase = P.ASSIGNED
    task.worker_id = worker.id
    task.assigned_at = now
    task.pending_reason = ""
    worker.leases[task.id] = task.attempt
    change.put_attempt(
        models.AttemptRecord(
            task_id=task.id, attempt=task.attempt, worker_id=worker.id, assigned_at=now
        )
    )
    change.plan.log(
        "dispatched task_id=%s attempt=%d worker_id=%s", task.id, task.attempt, worker.id
    )
    return task


def _apply_report(
    change: tables.Change, task: models.TaskRecord, item: records.StatusReport
) -> models.TaskRecord:
    at = item.timestamp or change.now
    task = change.edit_task(task)
    if item.output_tail:
        task.output_tail = item.output_tail
    if item.phase == P.RUNNING:
        task.phase = P.RUNNING
        task.started_at = at
        attempt = change.edit_attempt(_attempt(change, task))
        attempt.phase, attempt.started_at = P.RUNNING, at
        return task
    if item.phase == P.PENDING:
        message = item.message or "handed back by the worker before it started"
        _end_attempt(change, task, P.PENDING, message=message)
        return task
    task.exit_code = item.exit_code
    if item.phase == P.COMPLETED:
        _end_attempt(change, task, P.COMPLETED, message=item.message)
        return task
    kind = item.failure_kind or models.FailureKind.TASK_ERROR
    _end_attempt(change, task, item.phase, kind=kind, message=item.message)
    return task


def _attempt(change: tables.Change, task: models.TaskRecord) -> models.AttemptRecord:
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


def _lose(change: tables.Change, task: models.TaskRecord, reason: str) -> None:
    """Ends the current attempt as lost to the infrastructure (worker gone, restarted…)."""
    task = change.edit_task(task)
    _end_attempt(change, task, P.FAILED, kind=models.FailureKind.INFRASTRUCTURE, message=reason)


def _end_attempt(
    change: tables.Change,
    task: models.TaskRecord,
    phase: models.TaskPhase,
    *,
    kind: models.FailureKind | None = None,
    message: str = "",
) -> None:
    """Closes the current attempt of `task` (a copy this change owns), then finishes the task
    or puts it back in the queue."""
    now, live = change.now, change.tables
    attempt = change.edit_attempt(_attempt(change, task))
    attempt.phase, attempt.finished_at = phase, now
    attempt.exit_code, attempt.failure_kind, attempt.message = task.exit_code, kind, message
    change.drop_attempt((task.id, task.attempt))
    worker = live.workers.get(task.worker_id)
    if worker is not None:
        if task.id in worker.leases:
            worker = change.edit_worker(worker)
            del worker.leases[task.id]
        _refresh_state(change, worker)
        change.plan.freed.add(worker.id)
    change.discard_cancel(task.worker_id, (task.id, task.attempt))
    if phase == P.COMPLETED:
        _finish(change, task, phase, message=message)
    elif task.cancel_requested:
        _finish(change, task, P.CANCELLED, message=task.message or message)
    elif phase == P.CANCELLED:
        _finish(change, task, phase, message=message or "cancelled by the worker")
    elif phase == P.PENDING:  # handed back unstarted: no failure, no backoff
        _requeue(change, task, message, not_before=0.0)
    else:
        if kind == models.FailureKind.INFRASTRUCTURE:
            task.infra_failures += 1
        else:
            task.task_failures += 1
        decision = retry.after_failure(task, kind or models.FailureKind.TASK_ERROR, now)
        if not decision.retry:
            final = phase if phase in _FINAL_FROM_REPORT else P.FAILED
            _finish(change, task, final, message=f"{message} ({decision.reason})".strip())
        else:
            _requeue(change, task, message, decision.reason, not_before=decision.not_before)


def _requeue(
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


def _finish(
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


def _mark_unhealthy(change: tables.Change, worker: models.WorkerRecord, reason: str) -> None:
    worker = change.edit_worker(worker)
    worker.state = W.UNHEALTHY
    if worker.unhealthy_since is None:
        worker.unhealthy_since = change.now  # check_health counts the removal delay from here
    change.set_drain(worker.id, False)
    change.plan.hooks.append(("unhealthy", worker))
    for task_id in list(worker.leases):
        _lose(change, change.tables.tasks[task_id], reason)
    change.save_worker(change.tables.workers[worker.id])


def _remove_worker(change: tables.Change, worker: models.WorkerRecord, reason: str) -> None:
    live = change.tables
    for task_id in list(worker.leases):
        _lose(change, live.tasks[task_id], reason)
    change.delete_worker(worker.id)
    change.set_drain(worker.id, False)
    change.pop_cancels(worker.id)
    change.plan.removed.append(worker.id)
    change.plan.log("removed worker_id=%s: %s", worker.id, reason)


def _refresh_state(change: tables.Change, worker: models.WorkerRecord) -> models.WorkerRecord:
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
