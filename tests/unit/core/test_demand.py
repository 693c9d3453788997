"""Pool demand: each queued task counts for at most one pool, walltimes and fits respected."""

from __future__ import annotations

from builders import GiB, make_task
from hypothesis import given
from hypothesis import strategies as st
from vahana.core import demand, models

SMALL = demand.PoolOffer("ns/small", models.Resources(cpu_cores=2, memory_bytes=4 * GiB))
BIG = demand.PoolOffer("ns/big", models.Resources(cpu_cores=32, memory_bytes=256 * GiB, gpus=4))
HOUR_SLURM = demand.PoolOffer(
    "ns/hpc", models.Resources(cpu_cores=8, memory_bytes=32 * GiB), walltime_seconds=3600
)


def test_a_task_that_several_pools_could_run_counts_once_for_the_tightest_fit() -> None:
    tasks = [make_task(f"t{i}").cpu(1).record(seq=i) for i in range(5)]
    counts = demand.demand(tasks, [BIG, SMALL])
    assert counts == {"ns/big": 0, "ns/small": 5}
    assert sum(counts.values()) == len(tasks)


def test_tasks_too_big_for_the_small_pool_go_to_the_big_one() -> None:
    tasks = [
        make_task("gpu").gpus(1).record(),
        make_task("wide").cpu(4).record(),
        make_task("narrow").cpu(1).record(),
    ]
    assert demand.demand(tasks, [SMALL, BIG]) == {"ns/small": 1, "ns/big": 2}


def test_a_pinned_task_counts_only_for_its_pool_and_only_if_it_fits_there() -> None:
    tasks = [
        make_task("pinned").cpu(1).pool("ns/big").record(),
        make_task("too-big-for-its-pool").cpu(16).pool("ns/small").record(),
    ]
    assert demand.demand(tasks, [SMALL, BIG]) == {"ns/small": 0, "ns/big": 1}


def test_a_walltime_limited_pool_has_no_demand_from_tasks_longer_than_its_walltime() -> None:
    two_hours = [make_task(f"long{i}").cpu(1).timeout(7200).record(seq=i) for i in range(3)]
    # The 1-hour SLURM pool would scale to its maximum and never release: it must not count them.
    assert demand.demand(two_hours, [HOUR_SLURM]) == {"ns/hpc": 0}
    # A pool without walltime takes them instead.
    assert demand.demand(two_hours, [HOUR_SLURM, BIG]) == {"ns/hpc": 0, "ns/big": 3}
    within = make_task("short").cpu(1).timeout(3000).record()
    assert demand.demand([within], [HOUR_SLURM, BIG]) == {"ns/hpc": 1, "ns/big": 0}
    no_timeout = make_task("unbounded").cpu(1).record()
    assert demand.demand([no_timeout], [HOUR_SLURM]) == {"ns/hpc": 1}


def test_labels_must_be_offered_and_ties_go_to_the_first_pool_key() -> None:
    lab_a = demand.PoolOffer("ns/a", models.Resources(cpu_cores=4, labels={"site": "lab"}))
    lab_b = demand.PoolOffer("ns/b", models.Resources(cpu_cores=4, labels={"site": "lab"}))
    task = make_task("t").labels(site="lab").record()
    assert demand.demand([task], [lab_b, lab_a, SMALL]) == {"ns/b": 0, "ns/a": 1, "ns/small": 0}


def test_undeclared_capacity_offers_everything_but_sorts_after_declared_sizes() -> None:
    anything = demand.PoolOffer("ns/local", models.Resources())
    task = make_task("t").cpu(1).memory(GiB).record()
    assert demand.pool_for(task, [anything, SMALL]) == "ns/small"
    assert demand.pool_for(make_task("huge").cpu(64).record(), [anything, SMALL]) == "ns/local"


def test_no_pool_no_demand() -> None:
    assert demand.demand([make_task("t").record()], []) == {}


@given(
    cpus=st.lists(st.integers(min_value=0, max_value=40), max_size=30),
    timeouts=st.lists(st.sampled_from([0, 600, 7200]), min_size=30, max_size=30),
)
def test_every_task_counts_at_most_once_and_only_where_it_can_run(
    cpus: list[int], timeouts: list[int]
) -> None:
    offers = [SMALL, BIG, HOUR_SLURM]
    tasks = [
        make_task(f"t{i}").cpu(cpu).timeout(timeouts[i]).record(seq=i) for i, cpu in enumerate(cpus)
    ]
    counts = demand.demand(tasks, offers)
    runnable = sum(1 for task in tasks if any(demand.can_run(o, task) for o in offers))
    assert sum(counts.values()) == runnable
    for offer in offers:
        assert counts[offer.key] <= sum(1 for task in tasks if demand.can_run(offer, task))
