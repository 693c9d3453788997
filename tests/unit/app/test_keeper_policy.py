"""When a local worker that ended is replaced: at once, or after a pause that grows while
workers keep ending soon after they start; and when they are said not to start at all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from hypothesis import given
from hypothesis import strategies as st
from vahana.app.keeper import LocalWorkerKeeper, RestartPolicy


def test_a_worker_that_ran_a_while_is_replaced_at_once() -> None:
    policy = RestartPolicy(healthy_after=10.0)
    assert policy.pause_after(10.0) == 0.0
    assert policy.pause_after(3600.0) == 0.0


def test_workers_ending_soon_after_start_wait_longer_each_time_up_to_the_cap() -> None:
    policy = RestartPolicy(healthy_after=10.0, first_pause=1.0, max_pause=8.0)
    pauses = [policy.pause_after(0.5) for _ in range(6)]
    assert pauses == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_one_healthy_life_starts_the_pauses_over() -> None:
    policy = RestartPolicy(healthy_after=10.0, first_pause=1.0)
    policy.pause_after(0.1)
    policy.pause_after(0.1)
    assert policy.pause_after(60.0) == 0.0
    assert policy.pause_after(0.1) == 1.0


@given(st.lists(st.floats(min_value=0.0, max_value=1e6), max_size=50))
def test_a_pause_is_never_negative_nor_over_the_cap(lives: list[float]) -> None:
    policy = RestartPolicy(max_pause=60.0)
    for lived in lives:
        assert 0.0 <= policy.pause_after(lived) <= 60.0


def test_a_crash_loop_of_days_keeps_the_cap() -> None:
    policy = RestartPolicy(max_pause=60.0)
    for _ in range(5000):
        policy.pause_after(0.0)
    assert policy.pause_after(0.0) == 60.0


class _Pool:
    """The part of a LocalPool the keeper uses; its workers end when the test says."""

    def __init__(self) -> None:
        self.exit_listener: Callable[[str, str], None] | None = None
        self.started: list[str] = []

    def start_workers(self, count: int) -> list[str]:
        ids = [f"w{len(self.started) + i + 1}" for i in range(count)]
        self.started.extend(ids)
        return ids

    def stop_workers(self, worker_ids: Sequence[str]) -> None:
        pass


async def _ends(keeper: LocalWorkerKeeper, pool: _Pool, worker_id: str) -> None:
    assert pool.exit_listener is not None
    pool.exit_listener(worker_id, f"{worker_id} exited with 2")
    await asyncio.sleep(0)  # the keeper hears of it on the loop


def test_workers_that_end_as_they_start_without_registering_are_said_not_to_start() -> None:
    async def main() -> None:
        pool = _Pool()
        keeper = LocalWorkerKeeper(
            pool,  # type: ignore[arg-type]
            policy=RestartPolicy(first_pause=0.0, cannot_start_after=3),
        )
        keeper.start(2)
        await _ends(keeper, pool, "w1")
        await _ends(keeper, pool, "w2")
        assert keeper.cannot_start is None  # two in a row: not yet
        keeper._start(1)  # the replacement (its timer is not waited for here)
        await _ends(keeper, pool, "w3")
        assert keeper.cannot_start is not None
        assert "3 local workers in a row" in keeper.cannot_start
        assert "w3 exited with 2" in keeper.cannot_start
        keeper.stop()

    asyncio.run(main())


def test_a_worker_that_registered_before_it_ended_does_not_count() -> None:
    async def main() -> None:
        pool = _Pool()
        keeper = LocalWorkerKeeper(
            pool,  # type: ignore[arg-type]
            policy=RestartPolicy(first_pause=0.0, cannot_start_after=2),
            registered=lambda worker_id: worker_id == "w2",
        )
        keeper.start(3)
        await _ends(keeper, pool, "w1")
        await _ends(keeper, pool, "w2")  # registered: a task may have killed it
        await _ends(keeper, pool, "w3")
        assert keeper.cannot_start is None
        keeper.stop()

    asyncio.run(main())
