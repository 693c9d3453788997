"""The scheduler's decisions: each operation as a function of the tables, its input and `now`.

A decision reads `change.tables` and changes them only through `change` (copies installed,
replaced versions noted), so that what it decided is its plan (`change.plan`): the records to
write, and the effects — listener events, wake-ups, hooks, log lines — to let out once the
store holds them. No I/O here: the store is read before (`stored`, `known`) and written after.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Mapping, Sequence

from vahana.core import clock as clocks
from vahana.core import dependencies, fairshare, leases, matching, models, quarantine
from vahana.scheduling import dispatch, lifecycle, records, tables, waits

P = models.TaskPhase
W = models.WorkerState
_NO_QUARANTINE = quarantine.QuarantinePolicy(failures=0)


# -- clients -------------------------------------------------------------------------------------
def submit(
    change: tables.Change,
    submissions: Sequence[models.Submission],
    known: Mapping[str, str],
    new_task_id: clocks.IdFactory,
    upstream: Upstream | None = None,
) -> list[str]:
    """Accepts tasks; a key already known (`known`: from the store) returns that task's id.
    `upstream`: what the dependencies of these tasks name, for a submission where a task
    depends on another (ordered so that upstream tasks come first)."""
    ids: list[str] = []
    keys = change.tables.keys
    plan = change.plan
    made: dict[tuple[str, str], list[str]] = {}
    resolved: dict[tuple[str, str], dependencies.Target] = {}
    arrays: set[tuple[str, str]] = set()
    lookup = waits.lookup_in(change.tables, upstream.stored if upstream else {})
    for submission in submissions:
        if upstream is not None:
            node = (submission.namespace, dependencies.node_name(submission.spec))
            made.setdefault(node, []).append("")
            if submission.spec.array:
                arrays.add(node)
        if submission.key:
            existing = keys.get(submission.key) or known.get(submission.key)
            if existing:
                ids.append(existing)
                if upstream is not None:
                    made[node][-1] = existing
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
        if upstream is not None:
            made[node][-1] = task.id
            if submission.spec.depends_on:
                targets = {
                    d.name: _target(
                        upstream, made, arrays, resolved, (submission.namespace, d.name)
                    )
                    for d in submission.spec.depends_on
                }
                task.upstream = dependencies.resolve(submission.spec, targets)
        change.insert_task(task)
        failed = waits.hold_or_queue(change, task, lookup)
        if failed:
            lifecycle.finish(change, task, P.UPSTREAM_FAILED, message=failed)
        plan.emit(task)
        plan.log("accepted task_id=%s name=%s pool=%s", task.id, task.spec.name, task.pool or "-")
        ids.append(task.id)
    if plan.emitted:
        plan.wake.add(None)
    return ids


@dataclasses.dataclass
class Upstream:
    """What the dependencies of a submission name, gathered by the scheduler before it
    decides: tasks of earlier chunks of the same submission, and tasks submitted before."""

    earlier: dict[tuple[str, str], tuple[bool, list[str]]]
    """(namespace, name) → (an array?, ids in index order), of what was accepted before."""
    stored: Mapping[str, models.TaskRecord]
    """Those tasks that memory may no longer hold, as the store had them."""


def _target(
    upstream: Upstream,
    made: Mapping[tuple[str, str], list[str]],
    arrays: set[tuple[str, str]],
    resolved: dict[tuple[str, str], dependencies.Target],
    key: tuple[str, str],
) -> dependencies.Target:
    """What a name stands for; made once per name and decision (a name's tasks all come
    before its first dependent: `dependencies.order`)."""
    target = resolved.get(key)
    if target is None:
        array, before = upstream.earlier.get(key, (False, []))
        here = made.get(key, [])
        array = array or key in arrays
        target = resolved[key] = dependencies.Target(tuple(before) + tuple(here), array)
    return target


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
        lifecycle.finish(change, task, P.CANCELLED, message=message)
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
    if earlier is not None and earlier.quarantine_reason:
        raise records.WorkerQuarantined(
            f"worker {earlier.id} is {earlier.quarantine_reason}; start a worker that can "
            "run tasks (see its log), under another id or once this one is removed"
        )
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
            lifecycle.lose(change, task, f"worker {worker.id} restarted without it")
    lifecycle.refresh_state(change, live.workers[worker.id])
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
    fits = lifecycle.fits(worker, now)
    while slots > 0 and (
        len(worker.leases) < worker.max_tasks or lifecycle.may_prefetch(live, worker)
    ):
        task = dispatch.take_next(
            change,
            worker,
            functools.partial(fits, free),
            lambda t: matching.locality_rank(t.spec.resources.preferred_labels, labels),
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
        result.tasks.append(lifecycle.assign(change, task, worker))
        slots -= 1
    if result.tasks:
        lifecycle.refresh_state(change, worker)
        for task in result.tasks:
            change.plan.emit(task)
    return result


def report(
    change: tables.Change,
    worker_id: str,
    reports: Sequence[records.StatusReport],
    stored: Mapping[str, models.TaskRecord | None],
    policy: quarantine.QuarantinePolicy = _NO_QUARANTINE,
) -> list[records.ReportResult]:
    """Applies status reports; each is fenced by its attempt and judged on its own.

    `stored`: the tasks named by reports that are not in memory, as the store has them
    (finished long ago, or unknown). `policy`: when the reporting worker is quarantined."""
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
            task = lifecycle.apply_report(change, task, item, policy)
            change.plan.emit(task)
        cancel = task.cancel_requested and not task.is_final
        results.append(
            records.ReportResult(item.task_id, item.attempt, True, check.reason, cancel=cancel)
        )
    if worker_id in live.workers:
        lifecycle.refresh_state(change, live.workers[worker_id])
    return results


def report_and_poll(
    change: tables.Change,
    worker_id: str,
    reports: Sequence[records.StatusReport],
    stored: Mapping[str, models.TaskRecord | None],
    max_tasks: int,
    policy: quarantine.QuarantinePolicy = _NO_QUARANTINE,
) -> tuple[list[records.ReportResult], records.PollResult]:
    """`report()`, then `poll()` for up to `max_tasks` tasks (none if 0, or if the worker is
    unknown: reports are fenced by lease, not by registration), as one unit."""
    results = report(change, worker_id, reports, stored, policy)
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
        lifecycle.lose(change, task, f"worker {worker_id} no longer holds it")
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
    if worker.quarantine_reason:
        return  # stays quarantined (shown, refused) until check_health removes it
    if state == W.TERMINATED:
        lifecycle.remove_worker(change, worker, f"worker {worker_id} terminated {reason}".strip())
        return
    if state == W.UNHEALTHY:
        # As if it had gone silent: it gets no more work, and its tasks run elsewhere.
        lifecycle.mark_unhealthy(
            change, worker, f"worker {worker_id} reported itself unhealthy {reason}"
        )
        return
    worker = change.edit_worker(worker)
    if state == W.DRAINING:
        worker.state = state
    else:
        worker = lifecycle.refresh_state(change, worker)
    change.save_worker(worker)


def request_drain(change: tables.Change, worker_id: str) -> None:
    """Asks a worker to finish its tasks and leave (pool scale-down)."""
    worker = change.edit_worker(live_worker(change.tables, worker_id))
    change.set_drain(worker_id, True)
    worker.state = W.DRAINING
    change.save_worker(worker)
    change.plan.wake.add(worker_id)


def worker_exited(change: tables.Change, worker_id: str, reason: str) -> bool:
    """A pool saw the worker's process, Job or pilot end: the worker is lost now, not after
    its missed heartbeats — its attempts end as lost (infrastructure), its tasks go back to
    the queue, and it is removed. False (nothing to do) if it is not registered — it said
    TERMINATED after draining, was removed already, or never registered — or if it was given
    up on already (UNHEALTHY: its tasks were requeued then; it stays listed, with its reason,
    until the health monitor removes it)."""
    worker = change.tables.workers.get(worker_id)
    if worker is None or worker.state == W.UNHEALTHY:
        change.plan.reads = frozenset({("worker", worker_id)})
        return False
    change.plan.log(
        "worker exited worker_id=%s pool=%s task_ids=%s: %s",
        worker_id,
        worker.pool or "-",
        ",".join(sorted(worker.leases)) or "-",
        reason,
        level=logging.WARNING,
    )
    lifecycle.remove_worker(change, worker, f"worker {worker_id} exited: {reason}")
    return True


def check_health(change: tables.Change, settings: records.SchedulerSettings) -> None:
    """Marks silent workers UNHEALTHY and requeues their tasks; removes long-dead ones."""
    live, now = change.tables, change.now
    limit = settings.silence_limit_seconds
    for worker in list(live.workers.values()):
        if worker.state == W.UNHEALTHY:
            since = worker.unhealthy_since if worker.unhealthy_since is not None else now
            keep = (
                settings.quarantine_seconds
                if worker.quarantine_reason
                else settings.removal_after_unhealthy_seconds
            )
            if now - since >= keep:
                lifecycle.remove_worker(change, worker, "worker removed after being unhealthy")
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
            lifecycle.mark_unhealthy(
                change, worker, f"worker {worker.id} lost: no heartbeat for {silent:.0f}s"
            )
    if live.queue.promote_due(now):
        change.plan.wake.add(None)
    save_usage(change, settings.usage_save_interval_seconds)


def save_usage(change: tables.Change, every: float) -> None:
    """Writes the decayed usage of the queues whose usage changed since it was last written
    (`fairshare.needs_saving`), if the last such write is `every` seconds old (0: now, as on
    a clean stop). Periodic, not on each change: a dispatch writes nothing more, and what a
    crash loses is what the queues used since the last write."""
    live, now = change.tables, change.now
    if every > 0.0 and now - live.usage_saved_at < every:
        return
    changed = [
        queue
        for queue, usage in live.usage.items()
        if fairshare.needs_saving(usage, live.usage_saved.get(queue))
    ]
    if not changed:
        return  # nothing to write: the next change is written at the next check
    change.note_usage_saved()
    for queue in changed:
        change.save_usage(fairshare.saved(queue, live.usage[queue], now, live.half_life))


def recover_orphans(change: tables.Change, orphans: Sequence[str]) -> None:
    """After a restart: tasks whose worker is gone or unhealthy are lost; worker states are
    brought in line with the leases found."""
    live = change.tables
    for task_id in orphans:
        task = live.tasks[task_id]
        lifecycle.lose(change, task, f"worker {task.worker_id} is gone")
    for worker in list(live.workers.values()):
        lifecycle.refresh_state(change, worker)


def recover_dependents(
    change: tables.Change, task_ids: Sequence[str], stored: Mapping[str, models.TaskRecord]
) -> None:
    """After a restart: each dependent found PENDING is held again while an upstream task is
    open, queued if none is, ended if one ended in a way that keeps it from running."""
    lookup = waits.lookup_in(change.tables, stored)
    for task_id in task_ids:
        task = change.tables.tasks.get(task_id)
        if task is None or task.is_final:
            continue  # ended meanwhile, as the dependent of one recovered before it
        failed = waits.hold_or_queue(change, task, lookup)
        if failed:
            lifecycle.finish(change, change.edit_task(task), P.UPSTREAM_FAILED, message=failed)


def live_worker(live: tables.Tables, worker_id: str) -> models.WorkerRecord:
    worker = live.workers.get(worker_id)
    if worker is None or worker.state == W.UNHEALTHY:
        raise records.UnknownWorker(f"worker {worker_id!r} is not registered: register again")
    return worker
