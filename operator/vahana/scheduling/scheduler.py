"""The scheduler: live queue, workers and leases, written through to the store.

One instance runs on one thread (the event loop of the server). Every public method is one
unit of work: it decides on the state it holds, records the decision in one store transaction,
then tells listeners (watchers, status mirrors) and wakes the workers that have something new.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from vahana.core import clock as clocks
from vahana.core import leases, matching, models, reasons, retry
from vahana.core import queue as task_queue
from vahana.scheduling import records
from vahana.store import base

log = logging.getLogger(__name__)

TaskListener = Callable[[models.TaskRecord], None]
Waker = Callable[[str | None], None]
"""Called with a worker id that has something new, or None for every waiting worker."""
WorkerHook = Callable[[str, models.WorkerRecord], None]
"""Told of worker events only counters keep (metrics): "heartbeat", "unhealthy" (silent)."""

Method = TypeVar("Method", bound=Callable[..., Any])


def _publishes(method: Method) -> Method:
    """Tells listeners of the changes a public method made, once each, after they are committed;
    wakes the workers whose slots it freed when the outermost public call under way returns (a
    report that also brings the next task must not wake the worker's waiting poll)."""

    @functools.wraps(method)
    def wrapper(self: Scheduler, *args: Any, **kwargs: Any) -> Any:
        self._depth += 1
        try:
            result = method(self, *args, **kwargs)
        except BaseException:
            self._changed.clear()
            raise
        else:
            self._publish()
            return result
        finally:
            self._depth -= 1
            if not self._depth:
                self._wake_freed()

    return wrapper  # type: ignore[return-value]


_FINAL_FROM_REPORT = {
    models.TaskPhase.COMPLETED,
    models.TaskPhase.FAILED,
    models.TaskPhase.TIMED_OUT,
    models.TaskPhase.CANCELLED,
}


class Scheduler:
    def __init__(
        self,
        store: base.Store,
        *,
        settings: records.SchedulerSettings | None = None,
        clock: clocks.Clock = clocks.system_clock,
        new_task_id: clocks.IdFactory = clocks.random_task_id,
    ) -> None:
        self.settings = settings or records.SchedulerSettings()
        self._store = store
        self._clock = clock
        self._new_task_id = new_task_id
        self._tasks: dict[str, models.TaskRecord] = {}
        self._attempts: dict[tuple[str, int], models.AttemptRecord] = {}
        self._workers: dict[str, models.WorkerRecord] = {}
        self._queue = task_queue.TaskQueue()
        self._unsent_cancels: dict[str, set[records.Lease]] = {}
        self._drain_requested: set[str] = set()
        self._listeners: list[TaskListener] = []
        self._changed: dict[str, models.TaskRecord] = {}
        self._wake: Waker = lambda _worker_id: None
        self._worker_hook: WorkerHook = lambda _event, _worker: None
        self._removal_listeners: list[Callable[[str], object]] = []
        self._seq = 0
        self._depth = 0
        """Nesting of public (`_publishes`) calls under way."""
        self._freed: set[str] = set()
        """Workers a lease of which ended in the call under way."""
        self._all_slots: int | None = None
        """Sum of the registered workers' slots (None: to be counted again)."""

    # -- wiring -------------------------------------------------------------------------
    def add_listener(self, listener: TaskListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: TaskListener) -> None:
        self._listeners.remove(listener)

    def set_waker(self, waker: Waker) -> None:
        self._wake = waker

    def add_removal_listener(self, listener: Callable[[str], object]) -> None:
        """`listener(worker_id)` is called when a worker is removed (e.g. to revoke its token)."""
        self._removal_listeners.append(listener)

    def set_worker_hook(self, hook: WorkerHook) -> None:
        self._worker_hook = hook

    @_publishes
    def recover(self) -> None:
        """Rebuilds queue, leases and workers from the store after a (re)start."""
        now = self._clock()
        self._seq = self._store.max_seq()
        # Known workers get the recovery grace from now to reconnect: the scheduler was away,
        # not they, and their running tasks must not be rerun while they back off.
        reconnect_by = now - self.settings.silence_limit_seconds + self.settings.recovery_grace
        for worker in self._store.load_workers():
            worker.last_seen = max(worker.last_seen, reconnect_by)
            worker.leases = {}
            if worker.state == models.WorkerState.UNHEALTHY:
                worker.unhealthy_since = now
            if worker.state == models.WorkerState.DRAINING:
                # Told to drain before the restart: it must still be told to leave.
                self._drain_requested.add(worker.id)
            self._workers[worker.id] = worker
        self._all_slots = None
        orphans: list[models.TaskRecord] = []
        for task in self._store.load_unfinished_tasks():
            self._tasks[task.id] = task
            if task.phase == models.TaskPhase.PENDING:
                self._queue.push(task, now)
                continue
            for attempt in self._store.list_attempts(task.id)[-1:]:
                self._attempts[(task.id, attempt.attempt)] = attempt
            worker = self._workers.get(task.worker_id)
            if worker is None or worker.state == models.WorkerState.UNHEALTHY:
                orphans.append(task)
            else:
                worker.leases[task.id] = task.attempt
        with self._store.transaction():
            for task in orphans:
                self._lose(task, now, f"worker {task.worker_id} is gone")
        for worker in self._workers.values():
            self._refresh_state(worker)
        log.info(
            "recovered tasks=%d queued=%d workers=%d",
            len(self._tasks),
            len(self._queue),
            len(self._workers),
        )

    # -- clients ------------------------------------------------------------------------
    @_publishes
    def submit(self, submissions: Sequence[models.Submission]) -> list[str]:
        """Accepts tasks; a key already known returns the existing task's id."""
        now = self._clock()
        known = self._store.find_task_ids_by_keys([s.key for s in submissions])
        ids: list[str] = []
        new: list[models.TaskRecord] = []
        for submission in submissions:
            if submission.key and submission.key in known:
                ids.append(known[submission.key])
                continue
            self._seq += 1
            task = models.TaskRecord(
                id=self._new_task_id(),
                spec=submission.spec,
                created_at=now,
                seq=self._seq,
                key=submission.key,
                retry=submission.retry,
                pool=submission.pool,
                namespace=submission.namespace,
            )
            if submission.key:
                known[submission.key] = task.id
            new.append(task)
            ids.append(task.id)
        with self._store.transaction():
            self._store.insert_tasks(new)
        for task in new:
            self._tasks[task.id] = task
            self._queue.push(task, now)
            log.info(
                "accepted task_id=%s name=%s pool=%s", task.id, task.spec.name, task.pool or "-"
            )
            self._emit(task)
        if new:
            self._wake(None)
        return ids

    def get_task(self, task_id_or_name: str) -> models.TaskRecord:
        task = self._tasks.get(task_id_or_name) or self._store.get_task(task_id_or_name)
        if task is None:
            named = self._store.find_tasks_by_name(task_id_or_name)
            if len(named) > 1:
                raise records.UnknownTask(
                    f"{len(named)} tasks are named {task_id_or_name!r}: give the task id"
                )
            task = named[0] if named else None
        if task is None:
            raise records.UnknownTask(f"no task with id or name {task_id_or_name!r}")
        return self._tasks.get(task.id, task)

    def list_tasks(
        self,
        *,
        phase: models.TaskPhase | None = None,
        namespace: str | None = None,
        ids: Sequence[str] = (),
        limit: int = 0,
    ) -> list[models.TaskRecord]:
        stored = self._store.list_tasks(phase=phase, namespace=namespace, ids=ids, limit=limit)
        # The store is written through, but live records carry the pending reason.
        return [self._tasks.get(task.id, task) for task in stored]

    def find_by_key(self, key: str) -> str:
        """The id of the task submitted with this idempotency key, or ""."""
        return self._store.find_task_ids_by_keys([key]).get(key, "")

    def list_attempts(self, task_id: str) -> list[models.AttemptRecord]:
        return self._store.list_attempts(task_id)

    def worker_pool(self, worker_id: str) -> str | None:
        """The pool a registered worker belongs to; None if no such worker is registered."""
        worker = self._workers.get(worker_id)
        return worker.pool if worker is not None else None

    def lease_holder(self, task_id: str, attempt: int) -> str | None:
        """The worker this attempt of the task was given to; None if there is no such attempt."""
        task = self._tasks.get(task_id) or self._store.get_task(task_id)
        if task is None:
            return None
        if attempt == task.attempt and task.worker_id:
            return task.worker_id
        record = self._attempts.get((task_id, attempt))
        if record is None:
            found = [a for a in self._store.list_attempts(task_id) if a.attempt == attempt]
            record = found[0] if found else None
        return record.worker_id if record is not None else None

    def pending_reason(self, task: models.TaskRecord) -> str:
        if task.phase != models.TaskPhase.PENDING:
            return ""
        return reasons.explain_wait(task, list(self._workers.values()), self._clock())

    @_publishes
    def cancel(self, task_id_or_name: str, reason: str = "") -> tuple[bool, models.TaskPhase]:
        """Cancels a task; a running attempt is stopped on its worker. False if already final."""
        task = self.get_task(task_id_or_name)
        if task.is_final:
            return False, task.phase
        now = self._clock()
        message = f"cancelled: {reason}" if reason else "cancelled"
        task.cancel_requested = True
        with self._store.transaction():
            if task.phase == models.TaskPhase.PENDING:
                self._queue.remove(task.id)
                self._finish(task, models.TaskPhase.CANCELLED, now, message=message)
            else:
                task.message = message
                self._store.update_tasks([task])
                self._unsent_cancels.setdefault(task.worker_id, set()).add((task.id, task.attempt))
        log.info("cancel requested task_id=%s phase=%s", task.id, task.phase.value)
        if task.worker_id and not task.is_final:
            self._wake(task.worker_id)
        self._emit(task)
        return True, task.phase

    # -- workers ------------------------------------------------------------------------
    @_publishes
    def register(self, registration: records.Registration) -> list[records.Lease]:
        """Adds or re-admits a worker; returns the leases it reported that are no longer its."""
        now = self._clock()
        worker = self._workers.get(registration.worker_id)
        previous = dict(worker.leases) if worker else {}
        worker = models.WorkerRecord(
            id=registration.worker_id,
            capacity=registration.capacity,
            max_tasks=max(1, registration.max_tasks),
            registered_at=worker.registered_at if worker else now,
            last_seen=now,
            pool=registration.pool,
            hostname=registration.hostname,
            allocation_ends_at=registration.allocation_ends_at,
            experiment_id=registration.experiment_id,
            compute_resource_id=registration.compute_resource_id,
            metrics=worker.metrics if worker else models.WorkerMetrics(),
            last_heartbeat=now,
            prefetch=max(0, registration.prefetch),
        )
        self._workers[worker.id] = worker
        self._all_slots = None
        revoked: list[records.Lease] = []
        for task_id, attempt in registration.running:
            task = self._tasks.get(task_id)
            if (
                task is not None
                and task.phase.holds_lease
                and task.worker_id == worker.id
                and task.attempt == attempt
            ):
                worker.leases[task_id] = attempt
            else:
                revoked.append((task_id, attempt))
        with self._store.transaction():
            # Leases the worker no longer holds died with its previous incarnation.
            for task_id, attempt in previous.items():
                task = self._tasks.get(task_id)
                if task_id not in worker.leases and task is not None and task.attempt == attempt:
                    self._lose(task, now, f"worker {worker.id} restarted without it")
            self._refresh_state(worker)
            self._store.save_workers([worker])
        log.info(
            "registered worker_id=%s pool=%s slots=%d cpu=%g renewed=%d revoked=%d",
            worker.id,
            worker.pool or "-",
            worker.max_tasks,
            worker.capacity.cpu_cores,
            len(worker.leases),
            len(revoked),
        )
        self._wake(worker.id)
        return revoked

    @_publishes
    def poll(self, worker_id: str, max_tasks: int) -> records.PollResult:
        """Hands out up to `max_tasks` tasks that fit the worker, plus its control messages."""
        worker = self._live_worker(worker_id)
        now = self._clock()
        worker.last_seen = now
        result = records.PollResult()
        result.cancels = sorted(self._unsent_cancels.pop(worker_id, set()))
        if worker_id in self._drain_requested:
            result.drain = True
        if worker.state == models.WorkerState.DRAINING or result.drain or max_tasks <= 0:
            return result
        if self._queue.promote_due(now):
            self._wake(None)
        slots = min(max_tasks, worker.max_tasks + worker.prefetch - len(worker.leases))
        if slots <= 0 or not len(self._queue):
            return result
        free = matching.free_capacity(
            worker, (self._tasks[t].spec.resources for t in worker.leases if t in self._tasks)
        )
        while slots > 0 and (len(worker.leases) < worker.max_tasks or self._may_prefetch(worker)):
            task = self._queue.take(
                accept=lambda t, free=free: self._accepts(worker, free, t, now),
                rank=lambda t: matching.locality_rank(
                    t.spec.resources.preferred_labels, worker.capacity.labels
                ),
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
            self._assign(task, worker, now)
            result.tasks.append(task)
            slots -= 1
        if result.tasks:
            try:
                with self._store.transaction():
                    self._store.update_tasks(result.tasks)
                    self._store.save_attempts(
                        [self._attempts[(t.id, t.attempt)] for t in result.tasks]
                    )
            except Exception:
                # Nothing is handed out that the store does not record: undo and requeue.
                for task in result.tasks:
                    self._unassign(task, worker, now)
                raise
            self._refresh_state(worker)
            for task in result.tasks:
                self._emit(task)
        return result

    @_publishes
    def report(
        self, worker_id: str, reports: Sequence[records.StatusReport]
    ) -> list[records.ReportResult]:
        """Applies status reports; each is fenced by its attempt and judged on its own."""
        now = self._clock()
        worker = self._workers.get(worker_id)
        if worker is not None and worker.state != models.WorkerState.UNHEALTHY:
            worker.last_seen = now
        results: list[records.ReportResult] = []
        changed: dict[str, models.TaskRecord] = {}
        with self._store.transaction():
            for report in reports:
                task = self._tasks.get(report.task_id) or self._store.get_task(report.task_id)
                check = leases.check_report(
                    task, worker_id=worker_id, attempt=report.attempt, reported=report.phase
                )
                if check.verdict == leases.Verdict.REFUSE:
                    log.warning(
                        "refused report task_id=%s attempt=%d worker_id=%s status=%s: %s",
                        report.task_id,
                        report.attempt,
                        worker_id,
                        report.phase.value,
                        check.reason,
                    )
                    results.append(
                        records.ReportResult(
                            report.task_id, report.attempt, False, check.reason, stale=True
                        )
                    )
                    continue
                assert task is not None
                if check.verdict == leases.Verdict.APPLY:
                    self._apply_report(task, report, now)
                    changed[task.id] = task
                cancel = task.cancel_requested and not task.is_final
                results.append(
                    records.ReportResult(
                        report.task_id, report.attempt, True, check.reason, cancel=cancel
                    )
                )
            if worker is not None:
                self._refresh_state(worker)
        for task in changed.values():
            self._emit(task)
        return results

    @_publishes
    def report_and_poll(
        self, worker_id: str, reports: Sequence[records.StatusReport], max_tasks: int
    ) -> tuple[list[records.ReportResult], records.PollResult]:
        """`report()`, then `poll()` for up to `max_tasks` tasks (none if 0, or if the worker
        is unknown: reports are fenced by lease, not by registration)."""
        results = self.report(worker_id, reports)
        handed_out = records.PollResult()
        if max_tasks > 0:
            with contextlib.suppress(records.UnknownWorker):
                handed_out = self.poll(worker_id, max_tasks)
        return results, handed_out

    @_publishes
    def heartbeat(
        self,
        worker_id: str,
        metrics: models.WorkerMetrics,
        running: Iterable[records.Lease],
    ) -> records.HeartbeatResult:
        worker = self._workers.get(worker_id)
        if worker is None or worker.state == models.WorkerState.UNHEALTHY:
            return records.HeartbeatResult(reregister=True)
        now = self._clock()
        worker.last_seen = now
        worker.last_heartbeat = now
        worker.metrics = metrics
        self._worker_hook("heartbeat", worker)
        result = records.HeartbeatResult(drain=worker_id in self._drain_requested)
        held = dict(running)
        for task_id, attempt in held.items():
            task = self._tasks.get(task_id)
            current = task is not None and task.worker_id == worker_id and task.attempt == attempt
            if not current or (task is not None and task.cancel_requested):
                result.cancels.append((task_id, attempt))
        lost = [
            self._tasks[task_id]
            for task_id, attempt in worker.leases.items()
            if held.get(task_id) != attempt
            and now - (self._tasks[task_id].assigned_at or now) > self.settings.assignment_grace
        ]
        if lost:
            with self._store.transaction():
                for task in lost:
                    self._lose(task, now, f"worker {worker_id} no longer holds it")
                self._refresh_state(worker)
        return result

    @_publishes
    def set_worker_status(
        self, worker_id: str, state: models.WorkerState, reason: str = ""
    ) -> None:
        worker = self._workers.get(worker_id)
        if worker is None:
            raise records.UnknownWorker(f"worker {worker_id!r} is not registered")
        now = self._clock()
        worker.last_seen = now
        log.info("worker_id=%s reports %s %s", worker_id, state.value, reason)
        if state == models.WorkerState.TERMINATED:
            self._remove_worker(worker, now, f"worker {worker_id} terminated {reason}".strip())
            return
        if state in (models.WorkerState.DRAINING, models.WorkerState.UNHEALTHY):
            worker.state = state
            if state == models.WorkerState.UNHEALTHY and worker.unhealthy_since is None:
                # check_health counts the removal delay from here.
                worker.unhealthy_since = now
        else:
            self._refresh_state(worker)
        self._store.save_workers([worker])

    def free_slots(self, worker_id: str) -> int:
        """Tasks the worker could take now; 0 if it is unknown, draining or unhealthy."""
        worker = self._workers.get(worker_id)
        if (
            worker is None
            or worker.state not in (models.WorkerState.AVAILABLE, models.WorkerState.BUSY)
            or worker_id in self._drain_requested
        ):
            return 0
        return max(0, worker.max_tasks - len(worker.leases))

    def request_drain(self, worker_id: str) -> None:
        """Asks a worker to finish its tasks and leave (pool scale-down)."""
        worker = self._live_worker(worker_id)
        self._drain_requested.add(worker_id)
        worker.state = models.WorkerState.DRAINING
        self._store.save_workers([worker])
        self._wake(worker_id)

    def list_workers(
        self, *, pool: str = "", state: models.WorkerState | None = None
    ) -> list[models.WorkerRecord]:
        return [
            w
            for w in self._workers.values()
            if (not pool or w.pool == pool) and (state is None or w.state == state)
        ]

    @_publishes
    def check_health(self) -> None:
        """Marks silent workers UNHEALTHY and requeues their tasks; removes long-dead ones."""
        now = self._clock()
        limit = self.settings.silence_limit_seconds
        for worker in list(self._workers.values()):
            if worker.state == models.WorkerState.UNHEALTHY:
                assert worker.unhealthy_since is not None
                if now - worker.unhealthy_since >= self.settings.removal_after_unhealthy_seconds:
                    self._remove_worker(worker, now, "worker removed after being unhealthy")
                continue
            silent = now - worker.last_seen
            if silent < limit:
                continue
            log.warning(
                "worker unhealthy worker_id=%s silent_for=%.1fs tasks=%d",
                worker.id,
                silent,
                len(worker.leases),
            )
            worker.state = models.WorkerState.UNHEALTHY
            worker.unhealthy_since = now
            self._drain_requested.discard(worker.id)
            self._worker_hook("unhealthy", worker)
            with self._store.transaction():
                for task_id in list(worker.leases):
                    self._lose(
                        self._tasks[task_id],
                        now,
                        f"worker {worker.id} lost: no heartbeat for {silent:.0f}s",
                    )
                self._store.save_workers([worker])
        if self._queue.promote_due(now):
            self._wake(None)

    def next_timer(self) -> float | None:
        """When a delayed task becomes ready, so the caller can wake up for it."""
        return self._queue.next_due()

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def pending_shapes(self) -> list[models.TaskRecord]:
        return self._queue.shapes()

    def queued_tasks(self) -> Iterator[models.TaskRecord]:
        """Every queued task, ready or in a retry backoff (to read at once, e.g. for metrics)."""
        return iter(self._queue)

    # -- internals ----------------------------------------------------------------------
    def _live_worker(self, worker_id: str) -> models.WorkerRecord:
        worker = self._workers.get(worker_id)
        if worker is None or worker.state == models.WorkerState.UNHEALTHY:
            raise records.UnknownWorker(f"worker {worker_id!r} is not registered: register again")
        return worker

    def _accepts(
        self,
        worker: models.WorkerRecord,
        free: models.Resources,
        task: models.TaskRecord,
        now: float,
    ) -> bool:
        return (
            (not task.pool or task.pool == worker.pool)
            and matching.could_ever_fit(task.spec.resources, worker)
            and matching.fits_now(task.spec.resources, free, worker)
            and not matching.outlives_allocation(task.spec.timeout_seconds, worker, now)
        )

    def _assign(self, task: models.TaskRecord, worker: models.WorkerRecord, now: float) -> None:
        task.attempt += 1
        task.phase = models.TaskPhase.ASSIGNED
        task.worker_id = worker.id
        task.assigned_at = now
        task.pending_reason = ""
        worker.leases[task.id] = task.attempt
        self._attempts[(task.id, task.attempt)] = models.AttemptRecord(
            task_id=task.id, attempt=task.attempt, worker_id=worker.id, assigned_at=now
        )
        log.info("dispatched task_id=%s attempt=%d worker_id=%s", task.id, task.attempt, worker.id)

    def _unassign(self, task: models.TaskRecord, worker: models.WorkerRecord, now: float) -> None:
        worker.leases.pop(task.id, None)
        self._attempts.pop((task.id, task.attempt), None)
        task.attempt -= 1
        task.phase = models.TaskPhase.PENDING
        task.worker_id = ""
        task.assigned_at = None
        self._queue.push(task, now)

    def _apply_report(
        self, task: models.TaskRecord, report: records.StatusReport, now: float
    ) -> None:
        at = report.timestamp or now
        if report.output_tail:
            task.output_tail = report.output_tail
        if report.phase == models.TaskPhase.RUNNING:
            task.phase = models.TaskPhase.RUNNING
            task.started_at = at
            attempt = self._attempt(task)
            attempt.phase, attempt.started_at = models.TaskPhase.RUNNING, at
            self._store.update_tasks([task])
            self._store.save_attempts([attempt])
            return
        if report.phase == models.TaskPhase.PENDING:
            message = report.message or "handed back by the worker before it started"
            self._end_attempt(task, models.TaskPhase.PENDING, now, message=message)
            return
        task.exit_code = report.exit_code
        if report.phase == models.TaskPhase.COMPLETED:
            self._end_attempt(task, models.TaskPhase.COMPLETED, now, message=report.message)
            return
        kind = report.failure_kind or models.FailureKind.TASK_ERROR
        self._end_attempt(task, report.phase, now, kind=kind, message=report.message)

    def _attempt(self, task: models.TaskRecord) -> models.AttemptRecord:
        key = (task.id, task.attempt)
        if key not in self._attempts:
            self._attempts[key] = models.AttemptRecord(
                task_id=task.id,
                attempt=task.attempt,
                worker_id=task.worker_id,
                assigned_at=task.assigned_at or self._clock(),
            )
        return self._attempts[key]

    def _lose(self, task: models.TaskRecord, now: float, reason: str) -> None:
        """Ends the current attempt as lost to the infrastructure (worker gone, restarted…)."""
        self._end_attempt(
            task,
            models.TaskPhase.FAILED,
            now,
            kind=models.FailureKind.INFRASTRUCTURE,
            message=reason,
        )

    def _end_attempt(
        self,
        task: models.TaskRecord,
        phase: models.TaskPhase,
        now: float,
        *,
        kind: models.FailureKind | None = None,
        message: str = "",
    ) -> None:
        """Closes the current attempt, then finishes the task or puts it back in the queue."""
        attempt = self._attempt(task)
        attempt.phase, attempt.finished_at = phase, now
        attempt.exit_code, attempt.failure_kind, attempt.message = task.exit_code, kind, message
        self._store.save_attempts([attempt])
        self._attempts.pop((task.id, task.attempt), None)
        worker = self._workers.get(task.worker_id)
        if worker is not None:
            worker.leases.pop(task.id, None)
            self._refresh_state(worker)
            self._freed.add(worker.id)
        self._unsent_cancels.get(task.worker_id, set()).discard((task.id, task.attempt))
        if phase == models.TaskPhase.COMPLETED:
            self._finish(task, phase, now, message=message)
            return
        if task.cancel_requested:
            self._finish(task, models.TaskPhase.CANCELLED, now, message=task.message or message)
            return
        if phase == models.TaskPhase.CANCELLED:
            self._finish(task, phase, now, message=message or "cancelled by the worker")
            return
        if phase == models.TaskPhase.PENDING:  # handed back unstarted: no failure, no backoff
            self._requeue(task, now, message, not_before=0.0)
            return
        if kind == models.FailureKind.INFRASTRUCTURE:
            task.infra_failures += 1
        else:
            task.task_failures += 1
        decision = retry.after_failure(task, kind or models.FailureKind.TASK_ERROR, now)
        if not decision.retry:
            final = phase if phase in _FINAL_FROM_REPORT else models.TaskPhase.FAILED
            self._finish(task, final, now, message=f"{message} ({decision.reason})".strip())
            return
        self._requeue(task, now, message, decision.reason, not_before=decision.not_before)

    def _requeue(
        self,
        task: models.TaskRecord,
        now: float,
        message: str,
        decision: str = "",
        *,
        not_before: float,
    ) -> None:
        log.info(
            "requeued task_id=%s attempt=%d reason=%r %s", task.id, task.attempt, message, decision
        )
        task.phase = models.TaskPhase.PENDING
        task.worker_id = ""
        task.not_before = not_before
        task.message = message
        self._store.update_tasks([task])
        self._queue.push(task, now)
        self._emit(task)
        self._wake(None)

    def _may_prefetch(self, worker: models.WorkerRecord) -> bool:
        """Whether a worker whose slots are full may take one more task to queue (`poll`
        bounds how many by its prefetch): only while the queue holds more tasks than the other
        workers' slots, which leaves those for them (a task queued behind another waits; an
        idle worker would start it at once)."""
        if self._all_slots is None:
            self._all_slots = sum(w.max_tasks for w in self._workers.values())
        return len(self._queue) > self._all_slots - worker.max_tasks

    def _finish(
        self, task: models.TaskRecord, phase: models.TaskPhase, now: float, *, message: str = ""
    ) -> None:
        task.phase = phase
        task.finished_at = now
        task.message = message
        self._store.update_tasks([task])
        self._tasks.pop(task.id, None)
        log.info(
            "finished task_id=%s status=%s exit_code=%s attempt=%d",
            task.id,
            phase.value,
            task.exit_code,
            task.attempt,
        )
        self._emit(task)

    def _remove_worker(self, worker: models.WorkerRecord, now: float, reason: str) -> None:
        with self._store.transaction():
            for task_id in list(worker.leases):
                self._lose(self._tasks[task_id], now, reason)
            worker.state = models.WorkerState.TERMINATED
            self._store.delete_workers([worker.id])
        self._workers.pop(worker.id, None)
        self._all_slots = None
        self._drain_requested.discard(worker.id)
        self._unsent_cancels.pop(worker.id, None)
        log.info("removed worker_id=%s: %s", worker.id, reason)
        for listener in self._removal_listeners:
            listener(worker.id)

    def _refresh_state(self, worker: models.WorkerRecord) -> None:
        if worker.leases:
            worker.idle_since = None
        elif worker.idle_since is None:
            worker.idle_since = self._clock()
        if worker.state in (models.WorkerState.AVAILABLE, models.WorkerState.BUSY):
            full = len(worker.leases) >= worker.max_tasks
            worker.state = models.WorkerState.BUSY if full else models.WorkerState.AVAILABLE

    def _wake_freed(self) -> None:
        """A worker whose long poll waits while it is full polls again once a slot is free,
        unless the call that freed it also filled it (a report that brought the next task)."""
        freed, self._freed = self._freed, set()
        for worker_id in freed:
            worker = self._workers.get(worker_id)
            if worker is None or len(worker.leases) < worker.max_tasks:
                self._wake(worker_id)

    def _emit(self, task: models.TaskRecord) -> None:
        self._changed[task.id] = task

    def _publish(self) -> None:
        changed, self._changed = self._changed, {}
        for task in changed.values():
            for listener in list(self._listeners):
                try:
                    listener(task)
                except Exception:  # a broken watcher must not break scheduling
                    log.exception("task listener failed task_id=%s", task.id)


def snapshot(task: models.TaskRecord) -> models.TaskRecord:
    """A copy safe to keep after the live record changes."""
    return dataclasses.replace(task)
