"""When a local worker that ended is replaced: at once, or after a pause that grows while
workers keep ending soon after they start."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from vahana.app.keeper import RestartPolicy


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
