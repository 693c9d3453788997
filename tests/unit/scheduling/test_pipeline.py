"""Group commits off the event loop: the writer thread, the order of plans, their rollback.

The scheduler runs with its writer thread started, on a real SQLite file; the store's
transactions can be held (`gate`) to decide several operations before any is committed, and a
write can be made to fail (`faulty.FaultyStore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import consistency
import faulty
import pytest
from builders import make_registration, make_task
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vahana.core import clock as clocks
from vahana.core import models
from vahana.proto import worker_pb2 as pb
from vahana.rpc import wakeups, worker_service
from vahana.scheduling import records, scheduler
from vahana.store import base, sqlite

P = models.TaskPhase
W = models.WorkerState
SETTINGS = records.SchedulerSettings(
    heartbeat_interval_seconds=10.0,
    missed_heartbeats=3,
    recovery_grace_seconds=0.0,
    submit_chunk_tasks=100,
)


class Running:
    """A started scheduler (writer thread on) over a faulty store, and what it told."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.store = faulty.FaultyStore(sqlite.SqliteStore(db))
        self.clock = clocks.FakeClock(start=1_000.0)
        self.sched = scheduler.Scheduler(
            self.store,  # type: ignore[arg-type]
            settings=SETTINGS,
            clock=self.clock,
            new_task_id=clocks.counting_ids(),
        )
        self.told: list[tuple[str, P]] = []
        self.sched.add_listener(lambda task: self.told.append((task.id, task.phase)))
        self.health: list[bool] = []
        self.sched.add_store_health_listener(lambda healthy, _reason: self.health.append(healthy))

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
            await asyncio.sleep(0.001)

    def consistent(self) -> None:
        consistency.check_internal(self.sched)
        recovered = consistency.recovered_view(self.db, SETTINGS, self.clock)
        assert consistency.durable_view(self.sched) == recovered
        consistency.finished_as_stored(self.sched, self.db)


@asynccontextmanager
async def running(tmp: Path) -> AsyncIterator[Running]:
    it = Running(tmp / "vahana.db")
    it.sched.recover()
    it.sched.start()
    try:
        yield it
    finally:
        it.store.gate.set()
        await it.sched.close()
        it.store.inner.close()


def run(test: Callable[[Running], Awaitable[None]], tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path) as it:
            await test(it)

    asyncio.run(main())


def test_nothing_is_told_before_the_commit(tmp_path: Path) -> None:
    async def test(it: Running) -> None:
        await it.sched.register_async(make_registration("w1").registration())
        it.store.gate.clear()  # the writer waits at its next transaction
        submitted = asyncio.ensure_future(it.sched.submit_async([make_task("a").submission()]))
        await it.until(lambda: len(it.sched._tables.tasks) == 1)  # decided, live in memory
        await asyncio.sleep(0.05)
        assert it.told == [] and not submitted.done()
        it.store.gate.set()
        [a] = await submitted
        assert it.told == [(a, P.PENDING)]

    run(test, tmp_path)


def test_a_waiting_poll_is_woken_as_a_submission_is_decided_and_answered_after_it_commits(
    tmp_path: Path,
) -> None:
    async def test(it: Running) -> None:
        await it.sched.register_async(make_registration("w1").registration())
        woken: list[str | None] = []
        it.sched.set_waker(woken.append)
        it.store.gate.clear()  # the writer waits at its next transaction
        submitted = asyncio.ensure_future(it.sched.submit_async([make_task("a").submission()]))
        await it.until(lambda: len(it.sched._tables.tasks) == 1)
        assert woken == [None] and it.told == []  # woken while the submission is written
        # The woken poll hands the task out on memory; its answer waits for both commits.
        polled = asyncio.ensure_future(it.sched.poll_async("w1", 1))
        await it.until(lambda: len(it.sched._tables.workers["w1"].leases) == 1)
        await asyncio.sleep(0.05)
        assert not polled.done() and it.told == []
        it.store.gate.set()
        [a] = await submitted
        assert [task.id for task in (await polled).tasks] == [a]
        assert it.told == [(a, P.PENDING), (a, P.ASSIGNED)]
        it.consistent()

    run(test, tmp_path)


def test_a_poll_woken_by_a_plan_whose_commit_fails_waits_on_having_handed_out_nothing(
    tmp_path: Path,
) -> None:
    async def test(it: Running) -> None:
        wakes = wakeups.Wakeups(queued=lambda: it.sched.queue_length)
        it.sched.set_waker(wakes.wake)
        service = worker_service.WorkerService(it.sched, wakes)
        await it.sched.register_async(make_registration("w1").registration())
        request = pb.PollForTaskRequest(worker_id="w1", max_tasks=1)
        request.wait.FromSeconds(30)
        polled = asyncio.ensure_future(service.PollForTask(request, None))
        await it.until(lambda: wakes.waiting == 1)
        it.store.gate.clear()
        it.store.arm(faulty.AT_COMMIT)
        failing = asyncio.ensure_future(it.sched.submit_async([make_task("a").submission()]))
        # Woken as the submission is decided, the poll hands the task out on memory...
        await it.until(lambda: len(it.sched._tables.workers["w1"].leases) == 1)
        it.store.gate.set()
        with pytest.raises(base.StoreUnavailable):
            await failing
        # ...and goes back to waiting when both are rolled back: no error for the worker.
        await it.until(lambda: wakes.waiting == 1)
        assert not polled.done()
        assert it.told == [] and not it.sched._tables.workers["w1"].leases
        [b] = await it.sched.submit_async([make_task("b").submission()])
        answer = await asyncio.wait_for(polled, 10)
        assert answer.task.id == b and not answer.more_tasks
        it.consistent()

    run(test, tmp_path)


def test_what_was_decided_on_a_failed_commit_is_rolled_back_with_it(tmp_path: Path) -> None:
    async def test(it: Running) -> None:
        await it.sched.register_async(make_registration("w1").slots(2).registration())
        [a] = await it.sched.submit_async([make_task("a").submission()])
        before = consistency.memory_view(it.sched)
        told = len(it.told)
        it.store.gate.clear()
        it.store.arm(faulty.AT_COMMIT)
        # Each decided on what the one before decided: b submitted, a and b handed out, a
        # reported running; and a heartbeat answered on that.
        calls = [
            it.sched.submit_async([make_task("b").submission()]),
            it.sched.poll_async("w1", 2),
            it.sched.report_async("w1", [records.StatusReport(a, 1, P.RUNNING)]),
            it.sched.heartbeat_async("w1", models.WorkerMetrics(), [(a, 1)]),
        ]
        pending = [asyncio.ensure_future(call) for call in calls]
        await it.until(lambda: it.sched._tables.tasks[a].phase == P.RUNNING)
        it.store.gate.set()
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(o, base.StoreUnavailable) for o in outcomes), outcomes
        assert "disk full" in str(outcomes[0]) and "try again" in str(outcomes[0])
        assert consistency.memory_view(it.sched) == before
        assert it.told[told:] == []
        assert it.health[-1] is False and not it.sched.store_healthy
        it.consistent()
        # Tried again, all of it goes through, and the store is healthy again.
        [b] = await it.sched.submit_async([make_task("b").submission()])
        assert {t.id for t in (await it.sched.poll_async("w1", 2)).tasks} == {a, b}
        assert it.sched.store_healthy and it.health[-1] is True
        it.consistent()

    run(test, tmp_path)


def test_plans_waiting_together_are_one_commit(tmp_path: Path) -> None:
    async def test(it: Running) -> None:
        await it.sched.register_async(make_registration("w1").slots(10).registration())
        transactions = it.store.transactions
        it.store.gate.clear()
        first = asyncio.ensure_future(it.sched.submit_async([make_task("a").submission()]))
        rest = [
            asyncio.ensure_future(it.sched.submit_async([make_task(f"t{i}").submission()]))
            for i in range(20)
        ]
        await it.until(lambda: len(it.sched._tables.tasks) == 21)  # all decided, none committed
        it.store.gate.set()
        await asyncio.gather(first, *rest)
        # At most the one the writer took first, then the others waiting, at once.
        assert it.store.transactions - transactions <= 2
        assert len(it.sched._tables.tasks) == 21
        it.consistent()

    run(test, tmp_path)


def test_a_large_submission_lets_others_be_answered_between_its_chunks(tmp_path: Path) -> None:
    async def test(it: Running) -> None:
        await it.sched.register_async(make_registration("w1").slots(2).registration())
        submissions = [make_task(f"t{i}").submission() for i in range(2_000)]  # 20 chunks
        order: list[str] = []

        async def submit() -> None:
            await it.sched.submit_async(submissions)
            order.append("submitted")

        async def poll() -> None:
            await it.until(lambda: len(it.sched._tables.queue) > 0)
            result = await it.sched.poll_async("w1", 2)
            order.append(f"polled {len(result.tasks)}")

        await asyncio.gather(submit(), poll())
        assert order == ["polled 2", "submitted"]
        it.consistent()

    run(test, tmp_path)


def test_a_heartbeat_waits_only_for_what_changed_its_worker_or_tasks(tmp_path: Path) -> None:
    async def test(it: Running) -> None:
        await it.sched.register_async(make_registration("w1").registration())
        await it.sched.register_async(make_registration("w2").registration())
        [a] = await it.sched.submit_async([make_task("a").submission()])
        assert [t.id for t in (await it.sched.poll_async("w1", 1)).tasks] == [a]
        it.store.gate.clear()  # the writer holds what follows
        bulk = asyncio.ensure_future(
            it.sched.submit_async([make_task(f"b{i}").submission() for i in range(300)])
        )
        running = asyncio.ensure_future(
            it.sched.report_async("w1", [records.StatusReport(a, 1, P.RUNNING)])
        )
        await it.until(lambda: it.sched._tables.tasks[a].phase == P.RUNNING)
        # w2's heartbeat rests on nothing uncommitted: answered at once.
        assert not (await it.sched.heartbeat_async("w2", models.WorkerMetrics(), [])).cancels
        # w1's rests on the report of its task: it waits for that commit.
        beat = asyncio.ensure_future(
            it.sched.heartbeat_async("w1", models.WorkerMetrics(), [(a, 1)])
        )
        await asyncio.sleep(0.05)
        assert not beat.done() and not bulk.done()
        it.store.gate.set()
        assert (await beat).cancels == [] and (await running)[0].accepted
        assert len(await bulk) == 300
        it.consistent()

    run(test, tmp_path)


def test_tasks_of_a_poll_whose_caller_went_away_are_taken_back(tmp_path: Path) -> None:
    async def test(it: Running) -> None:
        await it.sched.register_async(make_registration("w1").slots(2).registration())
        [a] = await it.sched.submit_async([make_task("a").submission()])
        it.store.gate.clear()
        polling = asyncio.ensure_future(it.sched.poll_async("w1", 2))
        await it.until(lambda: it.sched._tables.tasks[a].phase == P.ASSIGNED)
        polling.cancel()  # the worker's call ended (its deadline) before the commit
        it.store.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await polling
        await it.until(lambda: it.sched._tables.tasks[a].phase == P.PENDING)
        await it.sched.settled()
        task = it.sched.get_task(a)
        assert (task.attempt, task.task_failures, task.infra_failures) == (1, 0, 0)
        assert "did not reach the worker" in task.message
        assert [t.id for t in (await it.sched.poll_async("w1", 2)).tasks] == [a]
        it.consistent()

    run(test, tmp_path)


def test_the_store_is_healthy_again_once_a_probe_writes(tmp_path: Path) -> None:
    async def test(it: Running) -> None:
        it.store.arm(1)
        with pytest.raises(base.StoreUnavailable):
            await it.sched.register_async(make_registration("w1").registration())
        assert not it.sched.store_healthy and "disk full" in it.sched.store_problem
        it.store.arm(faulty.AT_COMMIT)
        assert not await it.sched.probe_store()
        assert await it.sched.probe_store()
        assert it.sched.store_healthy and it.health == [False, True]

    run(test, tmp_path)


# -- random concurrent operations with a failing write, checked against a recovery --------------
def operations() -> st.SearchStrategy[tuple[Any, ...]]:
    workers = st.sampled_from(["w1", "w2"])
    picks = st.integers(0, 1_000)
    return st.one_of(
        st.tuples(st.just("submit"), st.integers(1, 3), st.sampled_from(["", "k1", "k2"])),
        st.tuples(st.just("register"), workers, st.integers(1, 3)),
        st.tuples(st.just("poll"), workers, st.integers(0, 3)),
        st.tuples(st.just("poll, then gone"), workers, st.integers(1, 3)),
        st.tuples(
            st.just("report"),
            picks,
            st.sampled_from([P.RUNNING, P.COMPLETED, P.FAILED, P.PENDING]),
            st.integers(-1, 2),
        ),
        st.tuples(st.just("heartbeat"), workers, st.booleans()),
        st.tuples(st.just("cancel"), picks),
        st.tuples(st.just("health"), st.sampled_from([0.0, 31.0, 61.0])),
        st.tuples(st.just("drain"), workers),
        st.tuples(st.just("status"), workers, st.sampled_from([W.TERMINATED, W.UNHEALTHY])),
        st.tuples(st.just("exited"), workers),
    )


async def gone(call: Awaitable[Any]) -> None:
    """The call, cancelled by its caller as soon as it is decided."""
    started = asyncio.ensure_future(call)
    await asyncio.sleep(0)
    started.cancel()
    with contextlib.suppress(asyncio.CancelledError, base.StoreUnavailable, records.UnknownWorker):
        await started


def call(it: Running, ids: list[str], op: tuple[Any, ...]) -> Awaitable[Any]:
    sched, kind = it.sched, op[0]
    if kind == "submit":
        return sched.submit_async(
            [make_task(f"t{i}").key(op[2] and f"{op[2]}-{i}").submission() for i in range(op[1])]
        )
    if kind == "register":
        return sched.register_async(make_registration(op[1]).slots(op[2]).registration())
    if kind == "poll":
        return sched.poll_async(op[1], op[2])
    if kind == "poll, then gone":
        return gone(sched.poll_async(op[1], op[2]))
    if kind == "report":
        task = sched._tables.task(ids[op[1] % len(ids)]) if ids else None
        if task is None:
            return asyncio.sleep(0)
        reports = [records.StatusReport(task.id, task.attempt, op[2], exit_code=0)]
        if op[3] < 0:
            return sched.report_async(task.worker_id or "w1", reports)
        return sched.report_and_poll_async(task.worker_id or "w1", reports, op[3])
    if kind == "heartbeat":
        held = sched._tables.workers.get(op[1])
        running = sorted(held.leases.items())[op[2] :] if held else []
        return sched.heartbeat_async(op[1], models.WorkerMetrics(), running)
    if kind == "cancel":
        return sched.cancel_async(ids[op[1] % len(ids)]) if ids else asyncio.sleep(0)
    if kind == "health":
        it.clock.advance(op[1])
        return sched.check_health_async()
    if kind == "drain":
        return sched.request_drain_async(op[1])
    if kind == "exited":
        return sched.worker_exited_async(op[1], "its process was killed by signal 9")
    return sched.set_worker_status_async(op[1], op[2], "told so")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rounds=st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from([faulty.AT_COMMIT, 1, 2, 3, 5, 8])),
            st.lists(operations(), min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_concurrent_operations_with_a_failing_group_commit_match_a_recovery(
    rounds: list[tuple[int | None, list[tuple[Any, ...]]]],
) -> None:
    logging.getLogger("vahana").setLevel(logging.CRITICAL)

    async def main(tmp: Path) -> None:
        async with running(tmp) as it:
            ids: list[str] = []
            for fault, ops in rounds:
                it.store.arm(fault)
                outcomes = await asyncio.gather(
                    *(call(it, ids, op) for op in ops), return_exceptions=True
                )
                await it.sched.settled()
                await asyncio.gather(*it.sched._background, return_exceptions=True)  # take-backs
                await it.sched.settled()
                it.store.arm(None)
                for op, outcome in zip(ops, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        expected = (base.StoreUnavailable, records.UnknownWorker)
                        assert isinstance(outcome, expected), (op, outcome)
                    elif op[0] == "submit":
                        ids.extend(i for i in outcome if i not in ids)
                it.consistent()

    try:
        with tempfile.TemporaryDirectory(prefix="vahana-pipeline-") as tmp:
            asyncio.run(main(Path(tmp)))
    finally:
        logging.getLogger("vahana").setLevel(logging.NOTSET)
