"""PoolManager.reconcile with a fake adapter: replacements for expiring pilots stay bounded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from vahana.core import models
from vahana.pools import base, scripts
from vahana.scheduling import pool_manager, records, scheduler
from vahana.store.sqlite import SqliteStore


class FakePool:
    """An adapter whose workers exist only as ids: enough to see what the manager asks for."""

    def __init__(self, context: base.PoolContext) -> None:
        self.name = context.key
        self.started: list[str] = []
        self.stopped: list[str] = []

    def start_workers(self, count: int) -> list[str]:
        ids = [f"w{len(self.started) + n}" for n in range(count)]
        self.started += ids
        return ids

    def stop_workers(self, worker_ids: Sequence[str]) -> None:
        self.stopped += worker_ids

    def list_workers(self) -> list[base.PoolWorker]:
        return [
            base.PoolWorker(w, base.PoolWorkerState.RUNNING)
            for w in self.started
            if w not in self.stopped
        ]

    def status(self) -> base.PoolStatus:
        return base.PoolStatus(self.name, 0, len(self.list_workers()), 0)

    def close(self, timeout: float = 30.0) -> None:
        self.stopped += self.started


class Fake:
    """A PoolManager over an in-memory scheduler, with "fake" pools: the adapters it built and
    the contexts it built them from."""

    def __init__(self, tmp_path: Path, *, reuse: bool = False, **defaults: Any) -> None:
        self.sched = scheduler.Scheduler(SqliteStore(":memory:"))
        self.adapters: list[FakePool] = []
        self.contexts: list[base.PoolContext] = []

        def factory(context: base.PoolContext, previous: base.WorkerPool | None) -> FakePool:
            self.contexts.append(context)
            if reuse and isinstance(previous, FakePool):
                return previous
            self.adapters.append(FakePool(context))
            return self.adapters[-1]

        self.manager = pool_manager.PoolManager(
            self.sched,
            pool_manager.PoolDefaults(
                server_address="x:1", heartbeat_interval_seconds=30, state_dir=tmp_path, **defaults
            ),
            {"fake": factory},
        )


def test_pilots_near_their_walltime_are_replaced_once_each_never_without_bound(
    tmp_path: Path,
) -> None:
    fake = Fake(tmp_path)
    sched, manager, adapters = fake.sched, fake.manager, fake.adapters
    spec = {"type": "fake", "minWorkers": 2, "maxWorkers": 2, "walltime": "40s"}
    manager.upsert("ns", "p", "uid", spec)
    key = pool_manager.pool_key("ns", "p")
    asyncio.run(manager.reconcile(key))
    [adapter] = adapters
    assert len(adapter.started) == 2

    def register_all(ends_in: float) -> None:
        for worker_id in adapter.started:
            sched.register(
                records.Registration(
                    worker_id,
                    models.Resources(1),
                    1,
                    pool=key,
                    allocation_ends_at=time.time() + ends_in,
                )
            )

    register_all(ends_in=5)  # within a quarter of the 40 s walltime: expiring
    for _ in range(5):
        asyncio.run(manager.reconcile(key))
        register_all(ends_in=5)
    assert len(adapter.started) == 4, "one replacement per expiring pilot, capped at 2 × maxWorkers"


def test_the_pools_drain_timeout_reaches_the_workers_flags(tmp_path: Path) -> None:
    fake = Fake(tmp_path, worker_binary_url="http://x/worker.pyz")
    manager, contexts = fake.manager, fake.contexts
    manager.upsert("ns", "p", "uid", {"type": "fake", "maxWorkers": 1})
    manager.upsert("ns", "p", "uid", {"type": "fake", "maxWorkers": 1, "drainTimeout": "2s"})
    assert [c.drain_timeout_seconds for c in contexts] == [30.0, 2.0]
    launch = scripts.launch_template(contexts[-1], "/tmp/w")
    assert "--drain-timeout=2s" in scripts.worker_args(launch)


def test_workers_of_local_pools_get_the_schedulers_worker_args(tmp_path: Path) -> None:
    from vahana.pools import local

    sched = scheduler.Scheduler(SqliteStore(":memory:"))
    manager = pool_manager.PoolManager(
        sched,
        pool_manager.PoolDefaults(
            server_address="x:1",
            heartbeat_interval_seconds=30,
            state_dir=tmp_path,
            worker_args=("--bootstrap-token-file=/run/token", "--output-dir=/data/out"),
        ),
        {"local": local.from_pool},
    )
    managed = manager.upsert("ns", "p", "uid", {"type": "local", "maxWorkers": 1})
    assert isinstance(managed.adapter, local.LocalPool)
    args = managed.adapter._config.extra_args
    assert "--bootstrap-token-file=/run/token" in args and "--output-dir=/data/out" in args


def test_a_pools_type_cannot_change_under_its_workers(tmp_path: Path) -> None:
    import pytest
    from vahana.pools import local

    sched = scheduler.Scheduler(SqliteStore(":memory:"))
    manager = pool_manager.PoolManager(
        sched,
        pool_manager.PoolDefaults(
            server_address="x:1", heartbeat_interval_seconds=30, state_dir=tmp_path
        ),
        {"local": local.from_pool, "other": local.from_pool},
    )
    manager.upsert("ns", "p", "uid", {"type": "local", "maxWorkers": 1})
    with pytest.raises(pool_manager.PoolSpecError, match="spec.type: cannot change"):
        manager.upsert("ns", "p", "uid", {"type": "other", "maxWorkers": 1})


def test_a_rotated_master_secret_reaches_the_pools_new_workers(tmp_path: Path) -> None:
    master = {"value": "first"}
    fake = Fake(tmp_path, reuse=True, pool_secret=lambda key: f"{master['value']}:{key}")
    manager, contexts = fake.manager, fake.contexts
    spec = {"type": "fake", "minWorkers": 1, "maxWorkers": 1}
    manager.upsert("ns", "p", "uid", spec)
    key = pool_manager.pool_key("ns", "p")
    asyncio.run(manager.reconcile(key))
    assert [c.bootstrap_secret for c in contexts] == ["first:ns/p"]
    master["value"] = "second"
    asyncio.run(manager.reconcile(key))
    assert [c.bootstrap_secret for c in contexts] == ["first:ns/p", "second:ns/p"]
    asyncio.run(manager.reconcile(key))
    assert len(contexts) == 2  # rebuilt once, on the change only


def test_a_pool_being_removed_starts_no_worker_and_its_close_waits_for_a_round(
    tmp_path: Path,
) -> None:
    fake = Fake(tmp_path)
    sched, manager, adapters = fake.sched, fake.manager, fake.adapters
    manager.upsert("ns", "p", "uid", {"type": "fake", "minWorkers": 2, "maxWorkers": 2})
    key = pool_manager.pool_key("ns", "p")

    async def scenario() -> None:
        await manager.reconcile(key)
        [adapter] = adapters
        assert len(adapter.started) == 2
        for worker_id in adapter.started:
            sched.register(records.Registration(worker_id, models.Resources(1), 1, pool=key))
        assert await manager.remove(key) == 2  # draining
        adapter.stopped += adapter.started  # the drained workers exit
        await manager.reconcile(key)  # a round during the removal: no replacement
        assert len(adapter.started) == 2
        # A round under way when the pool is closed: the close waits for it to end.
        held = manager._pools[key].lock
        await held.acquire()
        closing = asyncio.create_task(manager.close(key))
        await asyncio.sleep(0)
        assert not closing.done() and adapter.stopped == adapter.started
        held.release()
        await closing
        assert manager.lookup(key) is None

    asyncio.run(scenario())


def test_one_task_that_two_pools_could_run_starts_one_worker_and_long_tasks_none_on_short_pilots(
    tmp_path: Path,
) -> None:
    fake = Fake(tmp_path)
    small = {"type": "fake", "minWorkers": 0, "maxWorkers": 5, "resources": {"cpu": "2"}}
    big = {"type": "fake", "minWorkers": 0, "maxWorkers": 5, "resources": {"cpu": "16"}}
    hour = {"type": "fake", "minWorkers": 0, "maxWorkers": 5, "walltime": "1h",
            "resources": {"cpu": "8"}}  # fmt: skip
    for name, spec in (("small", small), ("big", big), ("hour", hour)):
        fake.manager.upsert("ns", name, name, spec)
    one_core = models.TaskSpec(name="t", command="true", resources=models.Resources(cpu_cores=1))
    two_hours = models.TaskSpec(
        name="long", command="true", resources=models.Resources(cpu_cores=8), timeout_seconds=7200
    )
    fake.sched.submit([models.Submission(spec=one_core), models.Submission(spec=two_hours)])
    for name in ("small", "big", "hour"):
        asyncio.run(fake.manager.reconcile(pool_manager.pool_key("ns", name)))
    started = {context.name: len(adapter.started) for context, adapter in
               zip(fake.contexts, fake.adapters, strict=True)}  # fmt: skip
    # The 1-core task: the tightest fit (small); the 2-hour task: big (the 1-hour pilots would
    # be cut off). Nothing for the walltime-limited pool.
    assert started == {"small": 1, "big": 1, "hour": 0}


# -- workers whose Job, SLURM job or process ended -------------------------------------------------
class EndingPool(FakePool):
    """A fake adapter that lists some of its workers ended, as a Job or SLURM job ends."""

    def __init__(self, context: base.PoolContext) -> None:
        super().__init__(context)
        self.ended: dict[str, base.PoolWorker] = {}

    def end(self, worker_id: str, state: base.PoolWorkerState, detail: str) -> None:
        self.ended[worker_id] = base.PoolWorker(worker_id, state, detail)

    def list_workers(self) -> list[base.PoolWorker]:
        return [self.ended.get(w.worker_id, w) for w in super().list_workers()]


class WatchingPool(FakePool):
    """A fake adapter that watches its workers' exits (`base.WatchesExits`), like the local
    and baremetal adapters."""

    def __init__(self, context: base.PoolContext) -> None:
        super().__init__(context)
        self.exit_listener: base.ExitListener | None = None


def test_a_reconcile_round_that_lists_a_worker_ended_has_its_tasks_requeued_at_once(
    tmp_path: Path,
) -> None:
    sched = scheduler.Scheduler(SqliteStore(":memory:"))
    adapters: list[EndingPool] = []

    def factory(context: base.PoolContext, previous: base.WorkerPool | None) -> EndingPool:
        adapters.append(EndingPool(context))
        return adapters[-1]

    manager = pool_manager.PoolManager(
        sched,
        pool_manager.PoolDefaults(
            server_address="x:1", heartbeat_interval_seconds=30, state_dir=tmp_path
        ),
        {"kubernetes": factory},
    )
    manager.upsert("ns", "p", "uid", {"type": "kubernetes", "minWorkers": 2, "maxWorkers": 2})
    key = pool_manager.pool_key("ns", "p")
    asyncio.run(manager.reconcile(key))
    [adapter] = adapters
    for worker_id in adapter.started:
        sched.register(records.Registration(worker_id, models.Resources(1), 1, pool=key))
    task = models.TaskSpec(name="t", command="sleep 60")
    [task_id] = sched.submit([models.Submission(spec=task)])
    [lost] = [w for w in adapter.started if sched.poll(w, 1).tasks]
    # The dead worker's Job failed; the other drained, said TERMINATED, and its Job completed.
    [drained] = [w for w in adapter.started if w != lost]
    sched.set_worker_status(drained, models.WorkerState.TERMINATED, "drained")
    adapter.end(lost, base.PoolWorkerState.FAILED, f"job {lost} failed: BackoffLimitExceeded")
    adapter.end(drained, base.PoolWorkerState.EXITED, f"job {drained} complete")

    status = asyncio.run(manager.reconcile(key))  # no heartbeat missed yet: 30 s intervals

    assert sched.list_workers() == []
    assert sched.get_task(task_id).phase == models.TaskPhase.PENDING
    [attempt] = sched.list_attempts(task_id)
    assert attempt.failure_kind == models.FailureKind.INFRASTRUCTURE
    assert attempt.message == (
        f"worker {lost} exited: its kubernetes pool lists it failed "
        f"(job {lost} failed: BackoffLimitExceeded)"
    )
    assert sorted(adapter.stopped) == sorted([lost, drained])  # forgotten by the adapter
    assert len(adapter.started) == 4  # and replaced
    assert status["lastError"] == f"worker {lost} failed (job {lost} failed: BackoffLimitExceeded)"


def test_an_adapter_that_watches_exits_gets_a_listener_that_tells_the_scheduler(
    tmp_path: Path,
) -> None:
    from vahana.observability import metrics, pools

    sched = scheduler.Scheduler(SqliteStore(":memory:"))
    adapters: list[WatchingPool] = []

    def factory(context: base.PoolContext, previous: base.WorkerPool | None) -> WatchingPool:
        adapters.append(WatchingPool(context))
        return adapters[-1]

    # Wrapped as when metrics are on: the wrapper hands the listener to the adapter.
    factories = pools.instrument_factories({"local": factory}, metrics.SchedulerMetrics())
    manager = pool_manager.PoolManager(
        sched,
        pool_manager.PoolDefaults(
            server_address="x:1", heartbeat_interval_seconds=30, state_dir=tmp_path
        ),
        factories,
    )
    manager.upsert("ns", "p", "uid", {"type": "local", "minWorkers": 1, "maxWorkers": 1})
    key = pool_manager.pool_key("ns", "p")

    async def scenario() -> None:
        await manager.reconcile(key)
        [adapter] = adapters
        assert adapter.exit_listener is not None  # set before the round started workers
        [worker_id] = adapter.started
        await sched.register_async(
            records.Registration(worker_id, models.Resources(1), 1, pool=key)
        )
        told = asyncio.Event()
        sched.add_removal_listener(lambda _worker_id: told.set())
        listener = adapter.exit_listener
        thread = threading.Thread(target=listener, args=(worker_id, "its process exited with 1"))
        thread.start()  # the adapter's watcher thread
        await asyncio.wait_for(told.wait(), 5)
        thread.join()
        await manager.exits.close()

    asyncio.run(scenario())
    assert sched.list_workers() == []


def test_summaries_give_each_pools_limits_and_its_last_round(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    manager = fake.manager
    manager.upsert("ns", "p", "uid", {"type": "fake", "minWorkers": 1, "maxWorkers": 3})
    key = pool_manager.pool_key("ns", "p")
    (before,) = manager.summaries()
    assert (before.key, before.kind, before.minimum, before.maximum) == (key, "fake", 1, 3)
    assert before.status == {}  # no round yet
    asyncio.run(manager.reconcile(key))
    (after,) = manager.summaries()
    assert after.status["desired"] == 1 and after.status["lastError"] is None

    def broken() -> list[base.PoolWorker]:
        raise RuntimeError("squeue: connection refused")

    fake.adapters[0].list_workers = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        asyncio.run(manager.reconcile(key))
    (failed,) = manager.summaries()
    assert failed.status["lastError"] == "squeue: connection refused"
    assert failed.status["desired"] == 1  # the rest of the last good round stays


def test_a_worker_s_end_reads_with_its_signal_or_exit_code() -> None:
    killed = base.PoolWorker("w1", base.PoolWorkerState.FAILED, "pid 26877", -9)
    exited = base.PoolWorker("w2", base.PoolWorkerState.FAILED, "pid 26878", 2)
    assert pool_manager._facts(killed) == "pid 26877, killed by signal 9"
    assert pool_manager._facts(exited) == "pid 26878, exit code 2"
    assert pool_manager._ended("local", killed) == (
        "its local pool lists it failed (pid 26877, killed by signal 9)"
    )
