"""The queues' decayed usage outlives a restart: written on stop and now and then, read back."""

from __future__ import annotations

import asyncio
import itertools
import math
import pathlib

import pytest
from builders import make_registration, make_task
from conftest import SETTINGS
from drive import heartbeat, poll_ids, register, report, submit
from vahana.core import clock as clocks
from vahana.core import fairshare, models
from vahana.scheduling import scheduler
from vahana.store import base, sqlite

P = models.TaskPhase
HALF_LIFE = SETTINGS.fair_share_half_life_seconds
EVERY = SETTINGS.usage_save_interval_seconds


@pytest.fixture
def opened() -> list[sqlite.SqliteStore]:
    return []


@pytest.fixture
def start(tmp_path: pathlib.Path, clock: clocks.FakeClock, opened):
    """Starts (and recovers) a scheduler on one store file, as a restarted process does."""

    def start_() -> scheduler.Scheduler:
        opened.append(sqlite.SqliteStore(tmp_path / "vahana.db"))
        started = scheduler.Scheduler(
            opened[-1],
            settings=SETTINGS,
            clock=clock,
            new_task_id=clocks.counting_ids(f"s{len(opened)}-"),
        )
        started.recover()
        return started

    yield start_
    for store in opened:
        store.close()


def _run_for(
    sched: scheduler.Scheduler,
    clock: clocks.FakeClock,
    queue: str,
    workers: list[str],
    seconds: float,
    *,
    task_seconds: float = 60.0,
    check_every: float = 0.0,
    finish: bool = True,
) -> list[str]:
    """`queue` keeps `workers` busy for `seconds` with tasks of `task_seconds` (exactly as
    many as that takes); with `check_every`, the health check runs that often (the workers
    beat meanwhile). `finish`: the last tasks end at the end, else they are returned running."""
    count = math.ceil(seconds / task_seconds) * len(workers)
    submit(sched, *(make_task(f"{queue}-{i}").queue(queue) for i in range(count)))
    held: dict[str, str] = {}
    elapsed = 0.0
    step = check_every or task_seconds
    while elapsed < seconds:
        for worker in workers:
            if worker not in held:
                [held[worker]] = poll_ids(sched, worker, 1)
        clock.advance(step)
        elapsed += step
        if check_every:
            for known in sched.list_workers():  # the idle ones too: none goes silent
                heartbeat(sched, known.id, *known.leases.items())
            sched.check_health()
        if elapsed % task_seconds == 0 and (finish or elapsed < seconds):
            for worker, task_id in held.items():
                report(sched, worker, task_id, 1, P.COMPLETED, exit_code=0)
            held.clear()
    return list(held.values())


async def _stop_through_the_writer(sched: scheduler.Scheduler) -> None:
    """A stop as a serving scheduler does it: the last write goes through the writer thread."""
    sched.start()
    await sched.close()


def _decayed_to(decayed: float, since: float, now: float) -> float:
    return decayed * 2.0 ** (-(now - since) / HALF_LIFE)


def test_a_queues_decayed_usage_is_where_it_was_after_a_clean_restart(start, clock) -> None:
    first = start()
    register(first, make_registration("w0"), make_registration("w1"))
    running = _run_for(first, clock, "a", ["w0", "w1"], 1800.0, finish=False)
    assert len(running) == 2  # still running at the stop: kept, and counted on from the restart
    stopped_at = clock.now
    at_stop = fairshare.decayed_at(first.queue_usage()["a"], stopped_at, HALF_LIFE)
    assert at_stop > 2 * 1800 * 0.8  # two cores for half an hour, decayed a little
    asyncio.run(_stop_through_the_writer(first))

    clock.advance(600.0)  # away for ten minutes
    restarted_at = clock.now
    second = start()
    usage = second.queue_usage()["a"]
    assert usage.as_of == restarted_at
    kept = _decayed_to(at_stop, stopped_at, restarted_at)
    assert math.isclose(usage.decayed, kept, rel_tol=1e-9)
    assert usage.cores == 2.0 and usage.total.tasks == 2  # the tasks found leased, from now on
    # And it goes on from there: the two leased tasks add up from the restart.
    clock.advance(100.0)
    from_restart = fairshare.QueueUsage(kept, restarted_at, cores=2.0)
    assert math.isclose(
        fairshare.decayed_at(usage, clock.now, HALF_LIFE),
        fairshare.decayed_at(from_restart, clock.now, HALF_LIFE),
        rel_tol=1e-9,
    )


def test_after_a_restart_the_queue_that_did_not_use_the_pool_is_served_first(start, clock) -> None:
    first = start()
    workers = [f"w{i}" for i in range(4)]
    register(first, *(make_registration(w) for w in workers))
    assert _run_for(first, clock, "heavy", workers, 3600.0, task_seconds=600.0) == []
    asyncio.run(first.close())

    clock.advance(60.0)
    second = start()
    # Both flood; heavy's tasks are the older ones, so without its kept usage (both at 0)
    # heavy would go first.
    submit(second, *(make_task(f"heavy-late-{i}").queue("heavy") for i in range(10)))
    submit(second, *(make_task(f"light-{i}").queue("light") for i in range(10)))
    fresh = [f"n{i}" for i in range(4)]
    register(second, *(make_registration(w) for w in fresh))
    served = [fairshare.queue_of(second.get_task(poll_ids(second, w, 1)[0])) for w in fresh]
    # Heavy kept 4 cores busy for a half-life: a share of 4 × ½ ÷ ln 2 ≈ 2.9 cores. Light's
    # share is the cores it runs: it gets the slots until it holds 3.
    assert served == ["light", "light", "light", "heavy"]


def test_a_crash_loses_at_most_the_usage_since_the_last_periodic_save(start, clock, opened) -> None:
    first = start()
    register(first, make_registration("w0"), make_registration("w1"))
    written: list[tuple[float, list[str]]] = []
    save = opened[-1].save_queue_usage

    def spy(usages):
        written.append((clock.now, [usage.queue for usage in usages]))
        save(usages)

    opened[-1].save_queue_usage = spy  # type: ignore[method-assign]
    _run_for(first, clock, "a", ["w0"], 600.0, check_every=5.0)
    # One long task: nothing moves "b"'s usage while it runs, yet it must be written.
    _run_for(first, clock, "b", ["w1"], 605.0, task_seconds=605.0, check_every=5.0, finish=False)
    crashed_at = clock.now
    before = first.queue_usage()
    # Written no more often than the interval, and only the queues that changed: "a" ran
    # nothing after its last task ended (its row decays as it does), "b" runs on.
    times = [at for at, _ in written]
    assert all(later - earlier >= EVERY for earlier, later in itertools.pairwise(times))
    last_of_a = max(i for i, (_, queues) in enumerate(written) if "a" in queues)
    assert all(queues == ["b"] for _, queues in written[last_of_a + 1 :])
    assert len(written) - last_of_a > 10

    # A crash: no close, the next scheduler reads what the last periodic save wrote.
    clock.advance(60.0)
    second = start()
    after = second.queue_usage()
    lost = {}
    for queue in ("a", "b"):
        had = fairshare.decayed_at(before[queue], crashed_at, HALF_LIFE)
        lost[queue] = _decayed_to(had, crashed_at, clock.now) - after[queue].decayed
    assert lost["a"] == pytest.approx(0.0, abs=1e-6)  # written after its last change
    assert 0.0 <= lost["b"] <= EVERY * before["b"].cores  # what ran since its last write
    assert after["b"].cores == 1.0  # its task, found leased, counts on from the restart


def test_a_periodic_save_that_fails_is_undone_and_written_at_the_next_check(
    start, clock, opened
) -> None:
    recovered_at = clock.now
    sched = start()
    register(sched, make_registration("w0"))
    _run_for(sched, clock, "a", ["w0"], 120.0)
    store = opened[-1]
    save = store.save_queue_usage

    def full(usages):
        raise base.StoreUnavailable("disk full")

    store.save_queue_usage = full  # type: ignore[method-assign]
    with pytest.raises(base.StoreUnavailable):
        sched.check_health()
    assert store.load_queue_usage() == []
    assert sched._tables.usage_saved == {} and sched._tables.usage_saved_at == recovered_at
    store.save_queue_usage = save  # type: ignore[method-assign]
    clock.advance(1.0)  # the disk has room again: the next check writes, not 30 s later
    sched.check_health()
    [row] = store.load_queue_usage()
    assert (row.queue, row.as_of) == ("a", clock.now)
    assert row.decayed == pytest.approx(
        fairshare.decayed_at(sched.queue_usage()["a"], clock.now, HALF_LIFE)
    )
