"""The scheduler: live queue, workers and leases, every change committed before it is told.

Each public operation is one unit of work: it decides on the state in memory (`decisions`,
through a `tables.Change`), which yields a plan — records to write and effects to let out —
the plan is committed to the store, and only then is the caller answered and are listeners,
hooks and log lines published (waiting long polls are woken at once: a poll's answer waits for
its own commit, which follows). A failed commit leaves memory exactly as it was and
raises `base.StoreUnavailable` with the store's reason. How plans are ordered, grouped into
commits by the writer thread and rolled back together: `pipeline`.

Each operation comes twice: `poll()` blocks its caller until the commit (tests, the kopf
handlers, the benchmark's core figures), `poll_async()` awaits it (the gRPC servicers). Both run
on one thread, the event loop's; with no writer started (`start()`), plans commit on the
caller's thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from vahana.core import clock as clocks
from vahana.core import dependencies, fairshare, models, reasons
from vahana.scheduling import decisions, lookups, pacing, pipeline, records, tables, waits
from vahana.scheduling import plan as plans
from vahana.store import base

log = logging.getLogger(__name__)

TaskListener = Callable[[models.TaskRecord], None]
Waker = Callable[[str | None], None]
"""Called with a worker id that has something new, or None for every waiting worker."""
WorkerHook = Callable[[str, models.WorkerRecord], None]
"""Told of worker events only counters keep (metrics): "heartbeat", "unhealthy" (silent)."""


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
        self._tables = tables.Tables()
        self._tables.half_life = self.settings.fair_share_half_life_seconds
        self._pipeline = pipeline.Pipeline(store, self._tables, publish=self._publish, clock=clock)
        self._listeners: list[TaskListener] = []
        self._wake: Waker = lambda _worker_id: None
        self._worker_hook: WorkerHook = lambda _event, _worker: None
        self._removal_listeners: list[Callable[[str], object]] = []
        self._background: set[asyncio.Future[None]] = set()
        """Take-backs under way (kept so that they are not collected before they run)."""

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

    def add_store_health_listener(self, listener: pipeline.HealthListener) -> None:
        """`listener(healthy, reason)` when the store stops or starts writing again."""
        self._pipeline.add_health_listener(listener)

    @property
    def store_healthy(self) -> bool:
        return self._pipeline.healthy

    @property
    def store_problem(self) -> str:
        """Why the store is unhealthy ("" when it is not)."""
        return self._pipeline.reason

    def start(self) -> None:
        """Moves the store's I/O off the event loop, to the writer thread (call on the loop)."""
        self._pipeline.start(max_group_rows=self.settings.commit_group_rows)

    async def close(self) -> None:
        """Writes the queues' usage that changed, commits what was decided and stops the
        writer (the store stays open)."""
        try:
            await self._run_async("save usage", decisions.save_usage, 0.0)
        except base.StoreUnavailable as error:  # kept up to the last periodic save
            log.warning("queue usage not saved on stop: %s", error)
        except Exception:  # the stop goes on: what was decided must still be committed
            log.exception("queue usage not saved on stop")
        await self._pipeline.stop()

    async def settled(self) -> None:
        """Waits until every operation decided so far is committed or rolled back."""
        await self._pipeline.settled()

    async def probe_store(self) -> bool:
        """Tries a tiny write: True (and healthy again) if the store can write."""
        return await self._pipeline.probe()

    @property
    def commits(self) -> int:
        """Transactions the writer committed (plans per commit = operations / commits)."""
        return self._pipeline.commits

    # -- queues -------------------------------------------------------------------------
    def set_queues(self, configs: Iterable[fairshare.QueueConfig]) -> None:
        """The configured queues, all of them (a queue left out has weight 1, no quota)."""
        self._tables.set_queues(list(configs))
        self._wake(None)  # a quota raised or removed may let tasks go

    @property
    def queues(self) -> dict[str, fairshare.QueueConfig]:
        return dict(self._tables.queue_configs)

    def now(self) -> float:
        """The scheduler's clock."""
        return self._clock()

    def queue_usage(self) -> dict[str, fairshare.QueueUsage]:
        """Each queue's usage (what it holds now, its decayed usage)."""
        return dict(self._tables.usage)

    # -- recovery -----------------------------------------------------------------------
    def recover(self) -> None:
        """Rebuilds queue, leases and workers from the store after a (re)start."""
        assert not self._pipeline.running, "recover() before start()"
        now, live, store = self._clock(), self._tables, self._store
        live.seq = store.max_seq()
        # The fair share goes on where it was: each queue's decayed usage as last saved,
        # decayed to now; the tasks found leased below count on top of it.
        for row in store.load_queue_usage():
            live.restore_usage(row, now)
        live.usage_saved_at = now
        # Known workers get the recovery grace from now to reconnect: the scheduler was away,
        # not they, and their running tasks must not be rerun while they back off.
        reconnect_by = now - self.settings.silence_limit_seconds + self.settings.recovery_grace
        for worker in store.load_workers():
            worker.last_seen = max(worker.last_seen, reconnect_by)
            worker.leases = {}
            if worker.state == models.WorkerState.UNHEALTHY:
                worker.unhealthy_since = now
            if worker.state == models.WorkerState.DRAINING:
                # Told to drain before the restart: it must still be told to leave.
                live.drain_requested.add(worker.id)
            live.workers[worker.id] = worker
        orphans: list[str] = []
        dependents: list[models.TaskRecord] = []
        for task in store.load_unfinished_tasks():
            live.tasks[task.id] = task
            if task.key:
                live.keys[task.key] = task.id
            if task.phase == models.TaskPhase.PENDING:
                if task.upstream:
                    dependents.append(task)  # held or queued once every task is known
                else:
                    live.queue.push(task, now)
                continue
            for attempt in store.list_attempts(task.id)[-1:]:
                live.attempts[(task.id, attempt.attempt)] = attempt
            holder = live.workers.get(task.worker_id)
            if holder is None or holder.state == models.WorkerState.UNHEALTHY:
                orphans.append(task.id)
            else:
                holder.leases[task.id] = task.attempt
                live.recovered_holding(task, holder.pool, now)
        self._run("recover", decisions.recover_orphans, orphans)
        if dependents:
            ended = [i for t in dependents for ids in t.upstream.values() for i in ids]
            stored = _read_ended(store, [i for i in dict.fromkeys(ended) if i not in live.tasks])
            self._run("recover", decisions.recover_dependents, [t.id for t in dependents], stored)
        log.info(
            "recovered tasks=%d queued=%d workers=%d queues=%d",
            len(live.tasks),
            len(live.queue),
            len(live.workers),
            len(live.usage),
        )

    # -- clients ------------------------------------------------------------------------
    def submit(self, submissions: Sequence[models.Submission]) -> list[str]:
        """Accepts tasks; a key already known returns the existing task's id. Refuses the
        whole submission (`records.RefusedDependencies`) if a dependency names no task or
        the dependencies form a cycle."""
        wanted = _named_elsewhere(submissions)
        if wanted is not None:
            named = self._pipeline.read_sync(lookups.named(wanted)) if wanted else {}
            ordered, upstream = _prepare(submissions, named)
            keys = self._unknown_keys(ordered)
            known = self._pipeline.read_sync(lookups.keys(keys)) if keys else {}
            ids = self._run("submit", decisions.submit, ordered, known, self._new_task_id, upstream)
            return _unordered(ids, submissions, ordered)
        keys = self._unknown_keys(submissions)
        known = self._pipeline.read_sync(lookups.keys(keys)) if keys else {}
        return self._run("submit", decisions.submit, submissions, known, self._new_task_id)  # type: ignore[no-any-return]

    async def submit_async(self, submissions: Sequence[models.Submission]) -> list[str]:
        """`submit()` in chunks of `settings.submit_chunk_tasks`: other calls are decided (and
        committed) between two chunks, so a large submission stalls nobody; up to
        `settings.commit_group_rows` of its tasks wait for their commit at a time. Not atomic:
        if a chunk fails, those before it stay accepted (with keys, submitting again is safe)."""
        size = max(1, self.settings.submit_chunk_tasks)
        most = max(2, self.settings.commit_group_rows // size)
        given = submissions
        upstream: decisions.Upstream | None = None
        wanted = _named_elsewhere(submissions)
        if wanted is not None:
            named = await self._pipeline.read(lookups.named(wanted)) if wanted else {}
            submissions, upstream = _prepare(submissions, named)
        ids: list[str] = []
        in_flight: collections.deque[plans.Plan] = collections.deque()
        pacer = pacing.Pacer()
        for start in range(0, len(submissions), size):
            chunk = submissions[start : start + size]
            keys = self._unknown_keys(chunk)
            known = await self._pipeline.read(lookups.keys(keys)) if keys else {}
            for earlier in in_flight:  # a chunk rolled back: none after it is accepted
                if earlier.state is plans.State.ROLLED_BACK:
                    await self._pipeline.wait(earlier)
            plan = self._decide(
                "submit", decisions.submit, chunk, known, self._new_task_id, upstream
            )
            ids.extend(plan.result)
            if upstream is not None:  # later chunks may depend on this one
                _note_accepted(upstream, chunk, plan.result)
            in_flight.append(plan)
            if len(in_flight) >= most:
                await self._pipeline.wait(in_flight.popleft())
            await pacer.turn()
        for plan in in_flight:
            await self._pipeline.wait(plan)
        return _unordered(ids, given, submissions) if upstream is not None else ids

    def cancel(self, task_id_or_name: str, reason: str = "") -> tuple[bool, models.TaskPhase]:
        """Cancels a task; a running attempt is stopped on its worker. False if already final."""
        task = self.get_task(task_id_or_name)
        if task.is_final:
            return False, task.phase
        return self._run("cancel", decisions.cancel, task.id, reason)  # type: ignore[no-any-return]

    async def cancel_async(
        self, task_id_or_name: str, reason: str = ""
    ) -> tuple[bool, models.TaskPhase]:
        task = await self.get_task_async(task_id_or_name)
        if task.is_final:
            return False, task.phase
        return await self._run_async("cancel", decisions.cancel, task.id, reason)  # type: ignore[no-any-return]

    # -- workers ------------------------------------------------------------------------
    def register(self, registration: records.Registration) -> list[records.Lease]:
        """Adds or re-admits a worker; returns the leases it reported that are no longer its."""
        return self._run("register", decisions.register, registration)  # type: ignore[no-any-return]

    async def register_async(self, registration: records.Registration) -> list[records.Lease]:
        return await self._run_async("register", decisions.register, registration)  # type: ignore[no-any-return]

    def poll(self, worker_id: str, max_tasks: int) -> records.PollResult:
        """Hands out up to `max_tasks` tasks that fit the worker, plus its control messages."""
        return self._run("poll", decisions.poll, worker_id, max_tasks)  # type: ignore[no-any-return]

    async def poll_async(self, worker_id: str, max_tasks: int) -> records.PollResult:
        """`poll()`; if the caller goes away before the answer (its call cancelled, say by
        its deadline while the store was slow), the tasks it was given are taken back."""
        plan = self._decide("poll", decisions.poll, worker_id, max_tasks)
        await self._handing_out(plan, worker_id, plan.result)
        return plan.result  # type: ignore[no-any-return]

    def report(
        self, worker_id: str, reports: Sequence[records.StatusReport]
    ) -> list[records.ReportResult]:
        """Applies status reports; each is fenced by its attempt and judged on its own."""
        stored = self._read_unknown_tasks_sync(reports)
        return self._run(  # type: ignore[no-any-return]
            "report", decisions.report, worker_id, reports, stored, self.settings.quarantine
        )

    async def report_async(
        self, worker_id: str, reports: Sequence[records.StatusReport]
    ) -> list[records.ReportResult]:
        stored = await self._read_unknown_tasks(reports)
        return await self._run_async(  # type: ignore[no-any-return]
            "report", decisions.report, worker_id, reports, stored, self.settings.quarantine
        )

    def report_and_poll(
        self, worker_id: str, reports: Sequence[records.StatusReport], max_tasks: int
    ) -> tuple[list[records.ReportResult], records.PollResult]:
        """`report()`, then `poll()` for up to `max_tasks` tasks (none if 0, or if the worker
        is unknown: reports are fenced by lease, not by registration) — one unit of work."""
        stored = self._read_unknown_tasks_sync(reports)
        return self._run(  # type: ignore[no-any-return]
            "report",
            decisions.report_and_poll,
            worker_id,
            reports,
            stored,
            max_tasks,
            self.settings.quarantine,
        )

    async def report_and_poll_async(
        self, worker_id: str, reports: Sequence[records.StatusReport], max_tasks: int
    ) -> tuple[list[records.ReportResult], records.PollResult]:
        stored = await self._read_unknown_tasks(reports)
        plan = self._decide(
            "report",
            decisions.report_and_poll,
            worker_id,
            reports,
            stored,
            max_tasks,
            self.settings.quarantine,
        )
        await self._handing_out(plan, worker_id, plan.result[1])
        return plan.result  # type: ignore[no-any-return]

    def heartbeat(
        self, worker_id: str, metrics: models.WorkerMetrics, running: Iterable[records.Lease]
    ) -> records.HeartbeatResult:
        grace = self.settings.assignment_grace
        return self._run("heartbeat", decisions.heartbeat, worker_id, metrics, running, grace)  # type: ignore[no-any-return]

    async def heartbeat_async(
        self, worker_id: str, metrics: models.WorkerMetrics, running: Iterable[records.Lease]
    ) -> records.HeartbeatResult:
        grace = self.settings.assignment_grace
        return await self._run_async(  # type: ignore[no-any-return]
            "heartbeat", decisions.heartbeat, worker_id, metrics, running, grace
        )

    def set_worker_status(
        self, worker_id: str, state: models.WorkerState, reason: str = ""
    ) -> None:
        self._run("worker status", decisions.set_worker_status, worker_id, state, reason)

    async def set_worker_status_async(
        self, worker_id: str, state: models.WorkerState, reason: str = ""
    ) -> None:
        await self._run_async(
            "worker status", decisions.set_worker_status, worker_id, state, reason
        )

    def request_drain(self, worker_id: str) -> None:
        """Asks a worker to finish its tasks and leave (pool scale-down)."""
        self._run("drain", decisions.request_drain, worker_id)

    async def request_drain_async(self, worker_id: str) -> None:
        await self._run_async("drain", decisions.request_drain, worker_id)

    def worker_exited(self, worker_id: str, reason: str) -> bool:
        """A pool saw the worker's process, Job or pilot end (`reason` says how): its tasks
        are requeued as lost and it is removed at once. False if there was nothing to do: it
        was not registered (it said TERMINATED after draining) or was UNHEALTHY already."""
        return self._run("worker exited", decisions.worker_exited, worker_id, reason)  # type: ignore[no-any-return]

    async def worker_exited_async(self, worker_id: str, reason: str) -> bool:
        return await self._run_async("worker exited", decisions.worker_exited, worker_id, reason)  # type: ignore[no-any-return]

    def check_health(self) -> None:
        """Marks silent workers UNHEALTHY and requeues their tasks; removes long-dead ones."""
        self._run("health check", decisions.check_health, self.settings)

    async def check_health_async(self) -> None:
        await self._run_async("health check", decisions.check_health, self.settings)

    # -- reads --------------------------------------------------------------------------
    def get_task(self, task_id_or_name: str) -> models.TaskRecord:
        task = self._tables.task(task_id_or_name)
        if task is None:
            task = self._pipeline.read_sync(lookups.task(task_id_or_name))
        return self._tables.task(task.id) or task

    async def get_task_async(self, task_id_or_name: str) -> models.TaskRecord:
        task = self._tables.task(task_id_or_name)
        if task is None:
            task = await self._pipeline.read(lookups.task(task_id_or_name))
        return self._tables.task(task.id) or task

    async def get_array_async(self, name: str) -> list[models.TaskRecord]:
        """The instances of the newest array named `name`, in index order, as memory has
        them; empty if there is no such array."""
        stored = await self._pipeline.read(lookups.array(name))
        return self._newest(stored)

    def get_array(self, name: str) -> list[models.TaskRecord]:
        return self._newest(self._pipeline.read_sync(lookups.array(name)))

    def list_tasks(
        self,
        *,
        phase: models.TaskPhase | None = None,
        namespace: str | None = None,
        ids: Sequence[str] = (),
        limit: int = 0,
    ) -> list[models.TaskRecord]:
        stored = self._pipeline.read_sync(
            lambda store: store.list_tasks(phase=phase, namespace=namespace, ids=ids, limit=limit)
        )
        return self._newest(stored)

    async def list_tasks_async(
        self,
        *,
        phase: models.TaskPhase | None = None,
        namespace: str | None = None,
        ids: Sequence[str] = (),
        limit: int = 0,
        after_seq: int = 0,
    ) -> list[models.TaskRecord]:
        await self.settled()
        stored = await self._pipeline.read(
            lambda store: store.list_tasks(
                phase=phase, namespace=namespace, ids=ids, limit=limit, after_seq=after_seq
            )
        )
        return self._newest(stored)

    def find_by_key(self, key: str) -> str:
        """The id of the task submitted with this idempotency key, or ""."""
        if key in self._tables.keys:
            return self._tables.keys[key]
        return self._pipeline.read_sync(lookups.keys([key])).get(key, "")

    def list_attempts(self, task_id: str) -> list[models.AttemptRecord]:
        return self._pipeline.read_sync(lambda store: store.list_attempts(task_id))

    async def list_attempts_async(self, task_id: str) -> list[models.AttemptRecord]:
        return await self._pipeline.read(lambda store: store.list_attempts(task_id))

    async def page_tasks_async(self, query: base.TaskQuery) -> base.TaskPage:
        """One page of tasks from the store (committed, newest first), read off the loop."""
        page = await self._pipeline.read(lambda store: store.page_tasks(query))
        return base.TaskPage(self._newest(page.tasks), page.total)

    def count_tasks_by_phase(self) -> dict[models.TaskPhase, int]:
        """Every task the store holds, by phase (one read: call it before `start()`)."""
        return self._pipeline.read_sync(lambda store: store.count_tasks_by_phase())

    def live_task(self, task_id: str) -> models.TaskRecord | None:
        """The task as memory holds it (unfinished, or among the newest finished); no I/O."""
        return self._tables.task(task_id)

    def worker_pool(self, worker_id: str) -> str | None:
        """The pool a registered worker belongs to; None if no such worker is registered."""
        worker = self._tables.workers.get(worker_id)
        return worker.pool if worker is not None else None

    def lease_holder(self, task_id: str, attempt: int) -> str | None:
        """The worker this attempt of the task was given to; None if there is no such attempt."""
        task = self._tables.task(task_id) or self._pipeline.read_sync(
            lambda store: store.get_task(task_id)
        )
        if task is None:
            return None
        if attempt == task.attempt and task.worker_id:
            return task.worker_id
        record = self._tables.attempts.get((task_id, attempt))
        if record is None:
            found = [a for a in self.list_attempts(task_id) if a.attempt == attempt]
            record = found[0] if found else None
        return record.worker_id if record is not None else None

    def pending_reason(self, task: models.TaskRecord) -> str:
        if task.phase != models.TaskPhase.PENDING:
            return ""
        live = self._tables
        if task.id in live.waiting:
            return waits.pending_reason(live, task)
        queue = fairshare.queue_of(task)
        held = fairshare.hold_reason(live.queue_configs.get(queue), live.usage.get(queue), task)
        why = reasons.explain_wait(task, list(live.workers.values()), self._clock())
        if held and not why.startswith(("cancelling", "retry backoff")):
            return held
        return why

    def free_slots(self, worker_id: str) -> int:
        """Tasks the worker could take now; 0 if it is unknown, draining or unhealthy."""
        worker = self._tables.workers.get(worker_id)
        if (
            worker is None
            or worker.state not in (models.WorkerState.AVAILABLE, models.WorkerState.BUSY)
            or worker_id in self._tables.drain_requested
        ):
            return 0
        return max(0, worker.max_tasks - len(worker.leases))

    def list_workers(
        self, *, pool: str = "", state: models.WorkerState | None = None
    ) -> list[models.WorkerRecord]:
        return [
            w
            for w in self._tables.workers.values()
            if (not pool or w.pool == pool) and (state is None or w.state == state)
        ]

    def next_timer(self) -> float | None:
        """When a delayed task becomes ready, so the caller can wake up for it."""
        return self._tables.queue.next_due()

    @property
    def queue_length(self) -> int:
        return len(self._tables.queue)

    def pending_shapes(self) -> list[models.TaskRecord]:
        return self._tables.queue.shapes()

    def queue_depths(self) -> dict[tuple[str, int], int]:
        """Queued tasks by (pool, priority), kept up to date by the queue (no scan)."""
        return self._tables.queue.depths()

    @property
    def unfinished_count(self) -> int:
        """Tasks queued or held by a worker."""
        return len(self._tables.tasks)

    def queued_tasks(self) -> Iterator[models.TaskRecord]:
        """Every queued task, ready or in a retry backoff (to read at once, e.g. for metrics)."""
        return iter(self._tables.queue)

    # -- internals ----------------------------------------------------------------------
    def _decide(self, operation: str, decide: Callable[..., Any], *args: Any) -> plans.Plan:
        """Decides one operation on memory (live at once) and sends its plan on its way."""
        plan = plans.Plan(operation)
        change = tables.Change(self._tables, plan, self._clock())
        try:
            plan.result = decide(change, *args)
        except BaseException:
            self._tables.revert(plan, change.now)  # a refused call (unknown worker) changes nothing
            raise
        self._pipeline.enqueue(plan)
        if plan.wake and plan.state is plans.State.DECIDED:
            # A woken poll decides on memory, where this plan is live, and its answer waits
            # for its own plan, which commits with or after this one: it can look now, while
            # this plan is written, instead of after (a submitted task reached an idle worker
            # one commit later). Nothing leaves the scheduler before the commit either way.
            for woken in plan.wake:
                self._wake(woken)
            plan.wake.clear()
        return plan

    def _run(self, operation: str, decide: Callable[..., Any], *args: Any) -> Any:
        plan = self._decide(operation, decide, *args)
        self._pipeline.wait_sync(plan)
        return plan.result

    async def _run_async(self, operation: str, decide: Callable[..., Any], *args: Any) -> Any:
        plan = self._decide(operation, decide, *args)
        await self._pipeline.wait(plan)
        return plan.result

    async def _handing_out(
        self, plan: plans.Plan, worker_id: str, handed_out: records.PollResult
    ) -> None:
        """Waits for the commit of a plan that hands tasks out. If the caller is cancelled
        meanwhile, its answer never leaves: once the plan is committed, the tasks it handed out
        are taken back (as a worker hands back a task it has not started) to run again at
        once, instead of waiting for the worker's heartbeats to show it never had them."""
        try:
            await self._pipeline.wait(plan)
        except asyncio.CancelledError:
            if handed_out.tasks:
                leases = [(task.id, task.attempt) for task in handed_out.tasks]
                later = asyncio.ensure_future(self._take_back(plan, worker_id, leases))
                self._background.add(later)
                later.add_done_callback(self._background.discard)
            raise

    async def _take_back(
        self, plan: plans.Plan, worker_id: str, leases: list[records.Lease]
    ) -> None:
        try:
            await self._pipeline.wait(plan)
        except base.StoreUnavailable:
            return  # rolled back: nothing was handed out
        reason = "taken back: the answer that carried it did not reach the worker"
        reports = [
            records.StatusReport(i, n, models.TaskPhase.PENDING, message=reason) for i, n in leases
        ]
        with contextlib.suppress(base.StoreUnavailable):  # then its heartbeats show it is not held
            await self._run_async("take back", decisions.report, worker_id, reports, {})

    def _publish(self, plan: plans.Plan) -> None:
        """Lets out what a committed plan decided."""
        for level, message, args in plan.logs:
            log.log(level, message, *args)
        for task in plan.emitted.values():
            for listener in list(self._listeners):
                try:
                    listener(task)
                except Exception:  # a broken watcher must not break scheduling
                    log.exception("task listener failed task_id=%s", task.id)
        for event, worker in plan.hooks:
            self._worker_hook(event, worker)
        for worker_id in plan.removed:
            for removal_listener in self._removal_listeners:
                removal_listener(worker_id)
        for woken in plan.wake:
            self._wake(woken)
        # A worker whose long poll waits while it is full polls again once a slot is free,
        # unless the operation that freed it also filled it (a report that brought a task).
        for worker_id in plan.freed:
            freed = self._tables.workers.get(worker_id)
            if freed is None or len(freed.leases) < freed.max_tasks:
                self._wake(worker_id)

    def _unknown_keys(self, submissions: Sequence[models.Submission]) -> list[str]:
        return [s.key for s in submissions if s.key and s.key not in self._tables.keys]

    def _unknown_tasks(self, reports: Sequence[records.StatusReport]) -> list[str]:
        return [r.task_id for r in reports if self._tables.task(r.task_id) is None]

    def _read_unknown_tasks_sync(
        self, reports: Sequence[records.StatusReport]
    ) -> dict[str, models.TaskRecord | None]:
        unknown = self._unknown_tasks(reports)
        return self._pipeline.read_sync(lookups.tasks(unknown)) if unknown else {}

    async def _read_unknown_tasks(
        self, reports: Sequence[records.StatusReport]
    ) -> dict[str, models.TaskRecord | None]:
        unknown = self._unknown_tasks(reports)
        return await self._pipeline.read(lookups.tasks(unknown)) if unknown else {}

    def _newest(self, stored: Iterable[models.TaskRecord]) -> list[models.TaskRecord]:
        # Memory holds the newest version, with its pending reason.
        return [self._tables.task(task.id) or task for task in stored]


def snapshot(task: models.TaskRecord) -> models.TaskRecord:
    """A copy safe to keep (records are no longer changed once live; kept for callers)."""
    return dataclasses.replace(task)


# -- dependencies ----------------------------------------------------------------------------
def _named_elsewhere(submissions: Sequence[models.Submission]) -> list[tuple[str, str]] | None:
    """None if no task of the submission depends on another (the common case, no cost);
    else the names its dependencies give that it does not hold itself (to read)."""
    if not any(s.spec.depends_on for s in submissions):
        return None
    here = {(s.namespace, dependencies.node_name(s.spec)) for s in submissions}
    wanted = {(s.namespace, d.name) for s in submissions for d in s.spec.depends_on}
    return sorted(wanted - here)


def _prepare(
    submissions: Sequence[models.Submission], named: lookups.Named
) -> tuple[list[models.Submission], decisions.Upstream]:
    """The submission checked (refused whole, naming every problem) and put in an order
    where upstream tasks come first, with what its dependencies name outside it."""
    known = {key: (len(tasks) if array else None) for key, (array, tasks) in named.items()}
    problems = dependencies.problems(dependencies.nodes_of(submissions), known)
    if problems:
        here = {(s.namespace, dependencies.node_name(s.spec)) for s in submissions}
        unknown = {
            d.name
            for s in submissions
            for d in s.spec.depends_on
            if (s.namespace, d.name) not in here and (s.namespace, d.name) not in known
        }
        raise records.RefusedDependencies(problems, sorted(unknown))
    ordered = [submissions[i] for i in dependencies.order(submissions)]
    upstream = decisions.Upstream(
        earlier={key: (array, [t.id for t in tasks]) for key, (array, tasks) in named.items()},
        stored={t.id: t for _, tasks in named.values() for t in tasks},
    )
    return ordered, upstream


def _note_accepted(
    upstream: decisions.Upstream, chunk: Sequence[models.Submission], ids: Sequence[str]
) -> None:
    for submission, task_id in zip(chunk, ids, strict=True):
        key = (submission.namespace, dependencies.node_name(submission.spec))
        array, found = upstream.earlier.setdefault(key, (bool(submission.spec.array), []))
        found.append(task_id)


def _unordered(
    ids: Sequence[str],
    given: Sequence[models.Submission],
    ordered: Sequence[models.Submission],
) -> list[str]:
    """The ids of `ordered` in the order the submissions were given."""
    position = {id(submission): task_id for submission, task_id in zip(ordered, ids, strict=True)}
    return [position[id(submission)] for submission in given]


def _read_ended(store: base.Store, task_ids: Sequence[str]) -> dict[str, models.TaskRecord]:
    """Upstream tasks that ended before a restart, read in bounded parts."""
    found: dict[str, models.TaskRecord] = {}
    for start in range(0, len(task_ids), 500):
        for task in store.list_tasks(ids=task_ids[start : start + 500]):
            found[task.id] = task
    return found
