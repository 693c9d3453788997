"""Queues: decayed usage, the fair share's order, quotas and their pending reasons."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vahana.core import fairshare, models

from tests.builders import make_task

HOUR = 3600.0
ONE_CORE = models.Resources(cpu_cores=1)


def test_a_running_core_adds_one_core_second_per_second_before_decay() -> None:
    usage = fairshare.started(fairshare.QueueUsage(as_of=0.0), "", ONE_CORE, 0.0, HOUR)
    assert fairshare.decayed_at(usage, 10.0, HOUR) == pytest.approx(10.0, rel=1e-2)


def test_usage_halves_after_one_half_life_once_nothing_runs() -> None:
    usage = fairshare.started(fairshare.QueueUsage(as_of=0.0), "", ONE_CORE, 0.0, HOUR)
    usage = fairshare.stopped(usage, "", ONE_CORE, 100.0, HOUR)
    after = fairshare.decayed_at(usage, 100.0, HOUR)
    assert fairshare.decayed_at(usage, 100.0 + HOUR, HOUR) == pytest.approx(after / 2)
    assert usage.cores == 0 and usage.total == fairshare.Amount()


@given(
    cores=st.floats(min_value=0.1, max_value=64),
    steps=st.lists(st.floats(min_value=0.0, max_value=5000.0), min_size=1, max_size=20),
)
def test_the_closed_form_equals_advancing_in_steps(cores: float, steps: list[float]) -> None:
    """Advancing the usage at many points (a task stopped and started at once) gives what one
    jump to the end gives: the closed form does not depend on how often it is looked at."""
    need = models.Resources(cpu_cores=cores)
    whole = fairshare.started(fairshare.QueueUsage(as_of=0.0), "", need, 0.0, HOUR)
    stepped, now = whole, 0.0
    for step in steps:
        now += step
        stepped = fairshare.started(
            fairshare.stopped(stepped, "", need, now, HOUR), "", need, now, HOUR
        )
    assert fairshare.decayed_at(stepped, now, HOUR) == pytest.approx(
        fairshare.decayed_at(whole, now, HOUR), rel=1e-6, abs=1e-6
    )


def test_steady_usage_settles_at_cores_times_half_life_over_ln2() -> None:
    usage = fairshare.started(fairshare.QueueUsage(as_of=0.0), "", ONE_CORE, 0.0, HOUR)
    assert fairshare.decayed_at(usage, 50 * HOUR, HOUR) == pytest.approx(HOUR / math.log(2))


@given(
    weights=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    slots=st.integers(4, 40),
)
def test_flooding_queues_split_the_slots_by_weight(weights: tuple[int, int], slots: int) -> None:
    """Filling free slots one by one, lowest share first, gives each queue its weight's part
    of the slots, to within one slot."""
    usage = {"a": fairshare.QueueUsage(as_of=0.0), "b": fairshare.QueueUsage(as_of=0.0)}
    weight = dict(zip("ab", weights, strict=True))
    for _ in range(slots):
        queue = min("ab", key=lambda q: (fairshare.share(usage[q], weight[q], 0.0, HOUR), q))
        usage[queue] = fairshare.started(usage[queue], "", ONE_CORE, 0.0, HOUR)
    expected = slots * weight["a"] / sum(weights)
    assert abs(usage["a"].total.tasks - expected) <= 1


def test_a_queue_that_used_much_recently_yields_to_one_that_did_not() -> None:
    busy = fairshare.started(fairshare.QueueUsage(as_of=0.0), "", ONE_CORE, 0.0, HOUR)
    busy = fairshare.stopped(busy, "", ONE_CORE, HOUR, HOUR)
    idle = fairshare.QueueUsage(as_of=0.0)
    assert fairshare.share(busy, 1, HOUR, HOUR) > fairshare.share(idle, 1, HOUR, HOUR)
    assert fairshare.share(busy, 1, 20 * HOUR, HOUR) == pytest.approx(0, abs=1e-3)


def test_a_quota_of_two_running_tasks_holds_the_third() -> None:
    config = fairshare.QueueConfig("q", quotas=(fairshare.Quota(tasks=2),), borrowing=False)
    usage = fairshare.QueueUsage(as_of=0.0)
    for pool in ("p1", "p2"):
        assert not fairshare.over_quota(config, usage, pool, ONE_CORE)
        usage = fairshare.started(usage, pool, ONE_CORE, 0.0, HOUR)
    held = fairshare.over_quota(config, usage, "p1", ONE_CORE)
    assert held == "queue q is at its quota overall: 2/2 running tasks"
    task = make_task("t").queue("q").record()
    assert fairshare.hold_reason(config, usage, task) == held + " (borrowing off)"


def test_a_pool_quota_binds_only_in_its_pool() -> None:
    config = fairshare.QueueConfig("q", quotas=(fairshare.Quota(pool="gpu", gpus=1),))
    one_gpu = models.Resources(gpus=1)
    usage = fairshare.started(fairshare.QueueUsage(), "gpu", one_gpu, 0.0, HOUR)
    assert fairshare.over_quota(config, usage, "gpu", one_gpu) == (
        "queue q is at its quota in pool gpu: gpus 2 > 1"
    )
    assert not fairshare.over_quota(config, usage, "cpu", one_gpu)
    task = make_task("t").queue("q").pool("gpu").gpus(1).record()
    assert fairshare.hold_reason(config, usage, task).endswith(
        "may borrow capacity that no other queue waits for"
    )


@pytest.mark.parametrize(
    ("quota", "need", "expected"),
    [
        (fairshare.Quota(cpu_cores=4), models.Resources(cpu_cores=3), "cpu 6 > 4"),
        (
            fairshare.Quota(memory_bytes=2**30),
            models.Resources(memory_bytes=2**29 * 3),
            "memory 3072Mi > 1024Mi",
        ),
    ],
)
def test_cpu_and_memory_quotas(
    quota: fairshare.Quota, need: models.Resources, expected: str
) -> None:
    config = fairshare.QueueConfig("q", quotas=(quota,))
    usage = fairshare.started(fairshare.QueueUsage(), "", need, 0.0, HOUR)
    assert fairshare.over_quota(config, usage, "", need).endswith(expected)


def test_a_task_belongs_to_its_queue_else_its_namespace_else_default() -> None:
    assert fairshare.queue_of(make_task("a").queue("q").namespace("ns").record()) == "q"
    assert fairshare.queue_of(make_task("a").namespace("ns").record()) == "ns"
    assert fairshare.queue_of(make_task("a").record()) == "default"


@given(
    cores=st.floats(min_value=0.0, max_value=64),
    decayed=st.floats(min_value=0.0, max_value=1e7),
    weight=st.floats(min_value=0.01, max_value=100),
    later=st.floats(min_value=0.0, max_value=20 * HOUR),
)
def test_share_terms_give_the_share_at_any_later_time(
    cores: float, decayed: float, weight: float, later: float
) -> None:
    """What dispatch ranks by (a × 2^(-(now - anchor) / half-life) + b) is the share."""
    usage = fairshare.QueueUsage(decayed=decayed, as_of=5_000.0, cores=cores)
    a, b = fairshare.share_terms(usage, weight, 1_000.0, HOUR)
    now = 5_000.0 + later
    ranked = a * 2 ** (-(now - 1_000.0) / HOUR) + b
    assert ranked == pytest.approx(fairshare.share(usage, weight, now, HOUR), rel=1e-9, abs=1e-9)


def test_a_move_is_undone_by_restoring_its_mark() -> None:
    usage = fairshare.started(fairshare.QueueUsage(as_of=0.0), "p", ONE_CORE, 0.0, HOUR)
    before = (usage.decayed, usage.as_of, usage.cores, usage.total, dict(usage.by_pool))
    for pool, sign in (("p", -1), ("q", 1), ("p", 1)):
        assert usage.mark(pool) == usage.copy().move(pool, ONE_CORE, 50.0, HOUR, sign)
        usage.restore(usage.move(pool, ONE_CORE, 50.0, HOUR, sign))
    assert (usage.decayed, usage.as_of, usage.cores, usage.total, usage.by_pool) == before


@given(
    tasks=st.integers(0, 5),
    cpu=st.floats(0, 8),
    held_tasks=st.integers(0, 6),
    held_cpu=st.floats(0, 8),
    need_cpu=st.floats(0, 4),
    same_pool=st.booleans(),
)
def test_the_fast_quota_test_agrees_with_the_explained_one(
    tasks: int, cpu: float, held_tasks: int, held_cpu: float, need_cpu: float, same_pool: bool
) -> None:
    config = fairshare.QueueConfig(
        "q", quotas=(fairshare.Quota(tasks=tasks), fairshare.Quota(pool="p", cpu_cores=cpu))
    )
    usage = fairshare.QueueUsage(
        total=fairshare.Amount(held_tasks, held_cpu),
        by_pool={"p": fairshare.Amount(held_tasks, held_cpu)},
    )
    need = models.Resources(cpu_cores=need_cpu)
    pool = "p" if same_pool else "other"
    assert fairshare.exceeds(config, usage, pool, need) == bool(
        fairshare.over_quota(config, usage, pool, need)
    )


# -- kept across restarts ----------------------------------------------------------------------
def test_a_saved_usage_restored_later_is_the_usage_decayed_over_the_gap() -> None:
    usage = fairshare.started(fairshare.QueueUsage(as_of=0.0), "", ONE_CORE, 0.0, HOUR)
    row = fairshare.saved("q", usage, 600.0, HOUR)  # the running core's 600 s are in it
    assert (row.queue, row.as_of) == ("q", 600.0)
    assert row.decayed == pytest.approx(fairshare.decayed_at(usage, 600.0, HOUR), rel=1e-12)
    back = fairshare.restored(row, 600.0 + HOUR, HOUR)
    assert back.decayed == pytest.approx(row.decayed / 2, rel=1e-12)
    assert (back.as_of, back.cores, back.total, back.by_pool) == (
        600.0 + HOUR,
        0.0,
        fairshare.Amount(),
        {},
    )


@pytest.mark.parametrize(
    ("decayed", "as_of", "expected"),
    [
        (100.0, 2000.0, 100.0),  # saved after "now" (the clock went back): counts as of now
        (-5.0, 0.0, 0.0),
        (math.nan, 0.0, 0.0),
        (math.inf, 0.0, 0.0),
        (100.0, math.nan, 100.0),
    ],
)
def test_a_row_from_the_future_or_not_a_usage_restores_sanely(
    decayed: float, as_of: float, expected: float
) -> None:
    back = fairshare.restored(fairshare.SavedUsage("q", decayed, as_of), 1000.0, HOUR)
    assert (back.decayed, back.as_of) == (expected, 1000.0)


def test_only_a_usage_that_ran_something_since_its_row_needs_saving() -> None:
    usage = fairshare.started(fairshare.QueueUsage(as_of=0.0), "", ONE_CORE, 0.0, HOUR)
    assert fairshare.needs_saving(usage, None)
    assert fairshare.needs_saving(usage, 10.0)  # a core runs: the row falls behind
    usage = fairshare.stopped(usage, "", ONE_CORE, 100.0, HOUR)
    assert fairshare.needs_saving(usage, 50.0)  # ran after the row
    assert not fairshare.needs_saving(usage, 100.0)  # the row decays as the usage does
    assert not fairshare.needs_saving(usage, 500.0)
