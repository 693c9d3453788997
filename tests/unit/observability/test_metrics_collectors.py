"""Gauges read at scrape time: queue depth by pool and priority, workers by pool and status."""

from __future__ import annotations

from builders import make_registration, make_task
from vahana.observability import instrumentation
from vahana.scheduling import scheduler


def value(metered: instrumentation.Instrumentation, name: str, **labels: str) -> float | None:
    return metered.registry.get_sample_value(name, labels)


def test_queue_depth_is_counted_by_pool_and_priority_and_drops_to_zero(
    sched: scheduler.Scheduler, metered: instrumentation.Instrumentation
) -> None:
    sched.submit(
        [
            make_task("a").submission(),
            make_task("b").priority(5).submission(),
            make_task("c").priority(5).submission(),
            make_task("d").pool("default/gpu").submission(),
        ]
    )
    assert value(metered, "vahana_queue_depth", pool="-", priority="0") == 1
    assert value(metered, "vahana_queue_depth", pool="-", priority="5") == 2
    assert value(metered, "vahana_queue_depth", pool="default/gpu", priority="0") == 1

    sched.register(make_registration("w1").slots(3).registration())
    assert len(sched.poll("w1", 3).tasks) == 3
    # Label sets seen once stay, at zero: the series falls instead of vanishing.
    assert value(metered, "vahana_queue_depth", pool="-", priority="5") == 0
    assert value(metered, "vahana_queue_depth", pool="default/gpu", priority="0") == 1


def test_workers_are_counted_by_pool_and_status_with_every_status_reported(
    sched: scheduler.Scheduler, metered: instrumentation.Instrumentation
) -> None:
    sched.register(make_registration("w1").pool("p").registration())
    sched.register(make_registration("w2").pool("p").registration())
    sched.register(make_registration("w3").registration())
    sched.submit([make_task("a").submission()])
    sched.poll("w1", 1)
    assert value(metered, "vahana_workers", pool="p", status="BUSY") == 1
    assert value(metered, "vahana_workers", pool="p", status="AVAILABLE") == 1
    assert value(metered, "vahana_workers", pool="p", status="DRAINING") == 0
    assert value(metered, "vahana_workers", pool="-", status="AVAILABLE") == 1
