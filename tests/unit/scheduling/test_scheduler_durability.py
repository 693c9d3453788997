"""One unit of work: random operation sequences with a write failing anywhere, on a real store.

After every step the scheduler's memory must be what a fresh scheduler recovers from the store
(nothing committed is missing from memory, nothing in memory is missing from the store); after
a step whose commit failed, memory must be exactly as before the step and nobody told of it.
The store is a real SQLite file; `faulty.FaultyStore` makes the chosen write (or the commit)
fail as a full disk does.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import consistency
import faulty
from builders import make_registration, make_task
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from vahana.core import clock as clocks
from vahana.core import models
from vahana.scheduling import records, scheduler
from vahana.store import base, sqlite

P = models.TaskPhase
W = models.WorkerState
SETTINGS = records.SchedulerSettings(
    heartbeat_interval_seconds=10.0,
    missed_heartbeats=3,
    removal_after_unhealthy_seconds=60.0,
    recovery_grace_seconds=0.0,
)
WORKERS = ("w1", "w2", "w3")
KEYS = ("", "", "k1", "k2", "k3")

faults = st.one_of(st.none(), st.sampled_from([faulty.AT_COMMIT, 1, 2, 3, 4, 5]))
"""No failure, the commit fails, or the n-th write of the operation fails."""
picks = st.integers(min_value=0, max_value=1_000)
"""An index into what exists (tasks, workers), taken modulo their number."""


class SchedulerWithFailingWrites(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="vahana-durability-"))
        self.db = self.dir / "vahana.db"
        self.store = faulty.FaultyStore(sqlite.SqliteStore(self.db))
        self.clock = clocks.FakeClock(start=1_000.0)
        self.sched = scheduler.Scheduler(
            self.store,  # type: ignore[arg-type]
            settings=SETTINGS,
            clock=self.clock,
            new_task_id=clocks.counting_ids(),
        )
        self.sched.recover()
        self.told: list[tuple[str, Any]] = []
        self.sched.add_listener(lambda task: self.told.append(("task", task.id)))
        self.sched.set_waker(lambda worker_id: self.told.append(("wake", worker_id)))
        self.sched.set_worker_hook(lambda event, worker: self.told.append((event, worker.id)))
        self.sched.add_removal_listener(lambda worker_id: self.told.append(("removed", worker_id)))
        self.ever: list[str] = []
        """Every task id handed out by submit (finished ones too)."""
        self.steps = self.failed_steps = 0
        # Every injected failure is logged; hundreds of runs of them hide what matters.
        self.logger = logging.getLogger("vahana")
        self.level = self.logger.level
        self.logger.setLevel(logging.CRITICAL)

    def teardown(self) -> None:
        self.logger.setLevel(self.level)
        self.store.inner.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- one step: the operation, with a failure armed ------------------------------------
    def step(self, fault: int | None, operation: Any, *args: Any) -> Any:
        before = consistency.memory_view(self.sched)
        told = len(self.told)
        failures = self.store.failures
        self.store.arm(fault)
        self.steps += 1
        try:
            return operation(*args)
        except base.StoreUnavailable as error:
            assert self.store.failures == failures + 1, f"not an injected failure: {error}"
            assert "disk full" in str(error)
            self.failed_steps += 1
            assert consistency.memory_view(self.sched) == before, "memory changed by a failure"
            assert self.told[told:] == [], "a failed operation was told"
            return None
        except (records.UnknownWorker, records.UnknownTask):
            assert consistency.memory_view(self.sched) == before, "memory changed by a refusal"
            return None
        finally:
            self.store.arm(None)

    def task_id(self, pick: int) -> str | None:
        return self.ever[pick % len(self.ever)] if self.ever else None

    def task(self, pick: int) -> models.TaskRecord | None:
        task_id = self.task_id(pick)
        return self.sched._tables.task(task_id) if task_id else None

    # -- rules --------------------------------------------------------------------------------
    @rule(
        fault=faults,
        tasks=st.lists(
            st.tuples(
                st.sampled_from(KEYS),
                st.integers(0, 1),
                st.integers(0, 2),
                st.sampled_from([0.0, 5.0]),
            ),
            min_size=1,
            max_size=3,
        ),
    )
    def submit(self, fault: int | None, tasks: list[tuple[str, int, int, float]]) -> None:
        submissions = [
            make_task(f"t{i}")
            .retries(task=task_retries, infra=infra_retries, backoff=backoff)
            .key(key)
            .submission()
            for i, (key, task_retries, infra_retries, backoff) in enumerate(tasks)
        ]
        ids = self.step(fault, self.sched.submit, submissions)
        if ids:
            self.ever.extend(i for i in ids if i not in self.ever)

    @rule(
        fault=faults,
        worker=st.sampled_from(WORKERS),
        slots=st.integers(1, 3),
        prefetch=st.integers(0, 1),
        keep=st.lists(st.booleans(), max_size=4),
        stale=st.booleans(),
    )
    def register(
        self,
        fault: int | None,
        worker: str,
        slots: int,
        prefetch: int,
        keep: list[bool],
        stale: bool,
    ) -> None:
        held = self.sched._tables.workers.get(worker)
        running = list(held.leases.items()) if held else []
        running = [lease for lease, kept in zip(running, keep, strict=False) if kept]
        if stale and running:
            running[0] = (running[0][0], running[0][1] + 1)
        registration = dataclasses.replace(
            make_registration(worker).slots(slots).registration(),
            running=tuple(running),
            prefetch=prefetch,
        )
        self.step(fault, self.sched.register, registration)

    @rule(fault=faults, worker=st.sampled_from(WORKERS), max_tasks=st.integers(0, 3))
    def poll(self, fault: int | None, worker: str, max_tasks: int) -> None:
        self.step(fault, self.sched.poll, worker, max_tasks)

    @rule(
        fault=faults,
        pick=picks,
        phase=st.sampled_from([P.RUNNING, P.COMPLETED, P.FAILED, P.PENDING, P.CANCELLED]),
        kind=st.sampled_from([None, models.FailureKind.INFRASTRUCTURE]),
        off=st.sampled_from([0, 0, 0, -1]),
        then_poll=st.integers(-1, 2),
        intruder=st.booleans(),
    )
    def report(
        self,
        fault: int | None,
        pick: int,
        phase: P,
        kind: models.FailureKind | None,
        off: int,
        then_poll: int,
        intruder: bool,
    ) -> None:
        task = self.task(pick)
        task_id = self.task_id(pick)
        if task_id is None:
            return
        worker = (task.worker_id if task else "") or WORKERS[pick % len(WORKERS)]
        if intruder:  # another worker reports it
            worker = next(w for w in WORKERS if w != worker)
        attempt = (task.attempt if task else 1) + off
        item = records.StatusReport(
            task_id, attempt, phase, exit_code=0 if phase == P.COMPLETED else 1, failure_kind=kind
        )
        if then_poll < 0:
            self.step(fault, self.sched.report, worker, [item])
        else:
            self.step(fault, self.sched.report_and_poll, worker, [item], then_poll)

    @rule(fault=faults, worker=st.sampled_from(WORKERS), drop=st.booleans(), late=st.booleans())
    def heartbeat(self, fault: int | None, worker: str, drop: bool, late: bool) -> None:
        held = self.sched._tables.workers.get(worker)
        running = sorted(held.leases.items()) if held else []
        if drop and running:
            running = running[1:]  # the worker no longer holds one of its tasks
        if late:
            self.clock.advance(SETTINGS.assignment_grace + 1)
        metrics = models.WorkerMetrics(active_tasks=len(running))
        self.step(fault, self.sched.heartbeat, worker, metrics, running)

    @rule(fault=faults, pick=picks)
    def cancel(self, fault: int | None, pick: int) -> None:
        task_id = self.task_id(pick)
        if task_id is not None:
            self.step(fault, self.sched.cancel, task_id, "not needed")

    @rule(fault=faults, advance=st.sampled_from([0.0, 5.0, 15.0, 31.0, 61.0]))
    def check_health(self, fault: int | None, advance: float) -> None:
        self.clock.advance(advance)
        self.step(fault, self.sched.check_health)

    @rule(fault=faults, worker=st.sampled_from(WORKERS))
    def drain(self, fault: int | None, worker: str) -> None:
        self.step(fault, self.sched.request_drain, worker)

    @rule(
        fault=faults,
        worker=st.sampled_from(WORKERS),
        state=st.sampled_from([W.TERMINATED, W.DRAINING, W.UNHEALTHY, W.AVAILABLE]),
    )
    def worker_status(self, fault: int | None, worker: str, state: W) -> None:
        self.step(fault, self.sched.set_worker_status, worker, state, "told so")

    @rule(fault=faults, worker=st.sampled_from(WORKERS))
    def worker_exited(self, fault: int | None, worker: str) -> None:
        self.step(fault, self.sched.worker_exited, worker, "its process was killed by signal 9")

    # -- after every step ----------------------------------------------------------------------
    @invariant()
    def memory_is_what_the_store_recovers(self) -> None:
        consistency.check_internal(self.sched)
        recovered = consistency.recovered_view(self.db, SETTINGS, self.clock)
        assert consistency.durable_view(self.sched) == recovered
        consistency.finished_as_stored(self.sched, self.db)


TestSchedulerWithFailingWrites = SchedulerWithFailingWrites.TestCase
TestSchedulerWithFailingWrites.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_every_write_of_an_operation_can_fail_and_is_rolled_back() -> None:
    """The property test above, reduced to one fixed run that fails each write in turn."""
    machine = SchedulerWithFailingWrites()
    try:
        machine.register(None, "w1", 2, 0, [], False)
        machine.submit(None, [("k1", 1, 1, 0.0), ("", 0, 0, 0.0), ("", 0, 1, 5.0)])
        for fault in (1, 2, 3, faulty.AT_COMMIT, None):
            machine.poll(fault, "w1", 2)
            machine.memory_is_what_the_store_recovers()
        [worker] = machine.sched.list_workers()
        first = machine.ever.index(min(worker.leases))
        for fault in (1, 2, faulty.AT_COMMIT, None):
            machine.report(fault, first, P.FAILED, None, 0, 1, False)
            machine.memory_is_what_the_store_recovers()
        for fault in (1, 2, 3, faulty.AT_COMMIT, None):
            machine.check_health(fault, 31.0)
            machine.memory_is_what_the_store_recovers()
        machine.register(None, "w2", 2, 0, [], False)
        machine.poll(None, "w2", 2)
        assert machine.sched._tables.workers["w2"].leases
        for fault in (1, 2, 3, faulty.AT_COMMIT, None):
            machine.worker_exited(fault, "w2")
            machine.memory_is_what_the_store_recovers()
        assert "w2" not in machine.sched._tables.workers
        assert machine.failed_steps >= 13
    finally:
        machine.teardown()
