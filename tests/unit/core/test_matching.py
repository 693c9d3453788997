"""Matching: whether a worker could ever / can now take a task, walltime, locality rank."""

from __future__ import annotations

import pytest
from builders import GiB, make_task, make_worker
from vahana.core import matching

NOW = 1000.0


def need(builder):
    return builder.spec().resources


@pytest.mark.parametrize(
    ("task", "fits"),
    [
        (make_task("t").cpu(4), True),
        (make_task("t").cpu(4.5), False),
        (make_task("t").memory(8 * GiB), True),
        (make_task("t").memory(8 * GiB + 1), False),
        (make_task("t").gpus(1), True),
        (make_task("t").gpus(2), False),
        (make_task("t").labels(zone="eu"), True),
        (make_task("t").labels(zone="us"), False),
        (make_task("t").labels(zone="eu", disk="ssd"), False),
    ],
)
def test_could_ever_fit_compares_each_dimension(task, fits: bool) -> None:
    worker = make_worker("w").cpu(4).memory(8 * GiB).gpus(1).labels(zone="eu").worker()
    assert matching.could_ever_fit(need(task), worker) is fits


def test_undeclared_cpu_and_memory_do_not_limit_but_gpus_do() -> None:
    worker = make_worker("w").worker()
    assert matching.could_ever_fit(need(make_task("t").cpu(64).memory(512 * GiB)), worker)
    assert not matching.could_ever_fit(need(make_task("t").gpus(1)), worker)


def test_free_capacity_subtracts_what_held_tasks_asked_for() -> None:
    worker = make_worker("w").cpu(8).memory(16 * GiB).gpus(2).labels(zone="eu").worker()
    free = matching.free_capacity(
        worker, [need(make_task("a").cpu(3).memory(GiB).gpus(1)), need(make_task("b").cpu(1))]
    )
    assert (free.cpu_cores, free.memory_bytes, free.gpus) == (4, 15 * GiB, 1)
    assert free.labels == {"zone": "eu"}


def test_fits_now_refuses_what_exceeds_free_capacity() -> None:
    worker = make_worker("w").cpu(4).memory(8 * GiB).gpus(1).worker()
    free = matching.free_capacity(worker, [need(make_task("a").cpu(3).gpus(1))])
    assert matching.fits_now(need(make_task("b").cpu(1)), free, worker)
    assert not matching.fits_now(need(make_task("b").cpu(2)), free, worker)
    assert not matching.fits_now(need(make_task("b").gpus(1)), free, worker)


def test_a_fully_used_declared_dimension_is_full_not_unknown() -> None:
    # Regression: free cpu of exactly 0 used to read as "undeclared" and let any task in.
    worker = make_worker("w").cpu(4).memory(4 * GiB).slots(4).worker()
    full_cpu = matching.free_capacity(worker, [need(make_task("a").cpu(4))])
    assert not matching.fits_now(need(make_task("b").cpu(1)), full_cpu, worker)
    full_memory = matching.free_capacity(worker, [need(make_task("a").memory(4 * GiB))])
    assert not matching.fits_now(need(make_task("b").memory(1)), full_memory, worker)
    assert matching.fits_now(need(make_task("b")), full_cpu, worker)  # asks for nothing


def test_fits_now_on_a_worker_without_declared_capacity_is_unlimited() -> None:
    worker = make_worker("w").slots(8).worker()
    free = matching.free_capacity(worker, [need(make_task("a").cpu(4))])
    assert matching.fits_now(need(make_task("b").cpu(4).memory(GiB)), free, worker)


@pytest.mark.parametrize(
    ("ends_at", "timeout", "outlives"),
    [
        (None, 3600, False),  # no allocation end: never
        (NOW + 100, 0, False),  # no own timeout: the worker's default applies
        (NOW + 100, 100, False),  # ends exactly when the allocation does
        (NOW + 100, 101, True),
    ],
)
def test_outlives_allocation(ends_at, timeout: float, outlives: bool) -> None:
    worker = make_worker("w").allocation_ends_at(ends_at).worker()
    assert matching.outlives_allocation(timeout, worker, NOW) is outlives


def test_labels_match_needs_every_required_label() -> None:
    assert matching.labels_match({}, {"a": "1"})
    assert matching.labels_match({"a": "1"}, {"a": "1", "b": "2"})
    assert not matching.labels_match({"a": "1", "b": "2"}, {"a": "1"})
    assert not matching.labels_match({"a": "1"}, {"a": "2"})


def test_locality_rank_counts_preferred_labels_offered() -> None:
    preferred = {"zone": "eu", "rack": "r1", "disk": "ssd"}
    assert matching.locality_rank(preferred, {"zone": "eu", "rack": "r2", "disk": "ssd"}) == 2
    assert matching.locality_rank(preferred, {}) == 0
    assert matching.locality_rank({}, {"zone": "eu"}) == 0
