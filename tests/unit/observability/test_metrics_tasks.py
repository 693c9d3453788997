"""Task metrics follow the scheduler: submissions, dispatch latency, durations, requeues, ends."""

from __future__ import annotations

from builders import make_registration, make_task
from vahana.core import clock as clocks
from vahana.core import models
from vahana.observability import instrumentation
from vahana.scheduling import records, scheduler

PENDING, ASSIGNED, RUNNING = (
    models.TaskPhase.PENDING,
    models.TaskPhase.ASSIGNED,
    models.TaskPhase.RUNNING,
)


def value(metered: instrumentation.Instrumentation, name: str, **labels: str) -> float:
    found = metered.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def report(
    sched: scheduler.Scheduler, worker: str, task_id: str, attempt: int, phase: models.TaskPhase
) -> None:
    [result] = sched.report(worker, [records.StatusReport(task_id, attempt, phase)])
    assert result.accepted, result.message


def test_a_task_run_to_completion_is_counted_once_with_its_latencies(
    sched: scheduler.Scheduler, clock: clocks.FakeClock, metered: instrumentation.Instrumentation
) -> None:
    [task_id] = sched.submit([make_task("a").submission()])
    assert value(metered, "vahana_tasks_submitted_total") == 1
    assert value(metered, "vahana_tasks", phase="PENDING") == 1
    clock.advance(2.0)
    sched.register(make_registration("w1").registration())
    [task] = sched.poll("w1", 1).tasks
    assert value(metered, "vahana_task_dispatch_latency_seconds_sum") == 2.0
    assert value(metered, "vahana_tasks", phase="ASSIGNED") == 1
    report(sched, "w1", task_id, task.attempt, RUNNING)
    assert value(metered, "vahana_tasks", phase="RUNNING") == 1
    clock.advance(5.0)
    report(sched, "w1", task_id, task.attempt, models.TaskPhase.COMPLETED)

    assert value(metered, "vahana_tasks_completed_total", phase="COMPLETED") == 1
    assert value(metered, "vahana_task_duration_seconds_sum", phase="COMPLETED") == 5.0
    assert value(metered, "vahana_task_duration_seconds_count", phase="COMPLETED") == 1
    for phase in (PENDING, ASSIGNED, RUNNING):
        assert value(metered, "vahana_tasks", phase=phase.value) == 0


def test_running_and_the_end_in_one_batch_still_give_a_duration(
    sched: scheduler.Scheduler, clock: clocks.FakeClock, metered: instrumentation.Instrumentation
) -> None:
    [task_id] = sched.submit([make_task("a").submission()])
    sched.register(make_registration("w1").registration())
    [task] = sched.poll("w1", 1).tasks
    sched.report(
        "w1",
        [
            records.StatusReport(task_id, task.attempt, RUNNING, timestamp=clock() + 1.0),
            records.StatusReport(task_id, task.attempt, models.TaskPhase.COMPLETED),
        ],
    )
    assert value(metered, "vahana_task_duration_seconds_count", phase="COMPLETED") == 1


def test_a_lost_worker_requeues_its_task_as_infrastructure_and_counts_the_unhealthy_worker(
    sched: scheduler.Scheduler, clock: clocks.FakeClock, metered: instrumentation.Instrumentation
) -> None:
    [task_id] = sched.submit([make_task("a").submission()])
    sched.register(make_registration("w1").pool("gpu").registration())
    [task] = sched.poll("w1", 1).tasks
    report(sched, "w1", task_id, task.attempt, RUNNING)
    sched.heartbeat("w1", models.WorkerMetrics(), [(task_id, task.attempt)])
    assert value(metered, "vahana_worker_heartbeats_received_total", pool="gpu") == 1

    clock.advance(31.0)
    sched.check_health()

    assert value(metered, "vahana_workers_marked_unhealthy_total", pool="gpu") == 1
    assert value(metered, "vahana_task_attempt_failures_total", kind="infrastructure") == 1
    assert value(metered, "vahana_task_requeues_total", kind="infrastructure") == 1
    assert value(metered, "vahana_tasks", phase="PENDING") == 1
    assert value(metered, "vahana_workers", pool="gpu", status="UNHEALTHY") == 1
    assert value(metered, "vahana_tasks_completed_total", phase="FAILED") == 0


def test_a_failed_attempt_retried_then_given_up_counts_task_failures(
    sched: scheduler.Scheduler, clock: clocks.FakeClock, metered: instrumentation.Instrumentation
) -> None:
    [task_id] = sched.submit([make_task("a").retries(task=1, backoff=3.0).submission()])
    sched.register(make_registration("w1").registration())
    for attempt in (1, 2):
        clock.advance(10.0)
        [task] = sched.poll("w1", 1).tasks
        assert task.attempt == attempt
        report(sched, "w1", task_id, attempt, RUNNING)
        sched.report(
            "w1",
            [records.StatusReport(task_id, attempt, models.TaskPhase.FAILED, exit_code=3)],
        )
    assert value(metered, "vahana_task_attempt_failures_total", kind="task") == 2
    assert value(metered, "vahana_task_requeues_total", kind="task") == 1
    assert value(metered, "vahana_tasks_completed_total", phase="FAILED") == 1
    # The retry waited out its backoff (3 s) before it was ready: 10 - 3 = 7 s to dispatch.
    assert value(metered, "vahana_task_dispatch_latency_seconds_sum") == 10.0 + 7.0


def test_cancelling_a_queued_task_ends_it_without_a_duration(
    sched: scheduler.Scheduler, metered: instrumentation.Instrumentation
) -> None:
    [task_id] = sched.submit([make_task("a").submission()])
    sched.cancel(task_id)
    assert value(metered, "vahana_tasks_completed_total", phase="CANCELLED") == 1
    assert value(metered, "vahana_task_duration_seconds_count", phase="CANCELLED") == 0


def test_tasks_recovered_before_the_metrics_listened_are_seeded_not_counted(
    clock: clocks.FakeClock,
) -> None:
    from prometheus_client import CollectorRegistry
    from vahana.store import sqlite

    store = sqlite.SqliteStore(":memory:")
    first = scheduler.Scheduler(store, clock=clock, new_task_id=clocks.counting_ids())
    first.submit([make_task("a").submission(), make_task("b").submission()])
    again = scheduler.Scheduler(store, clock=clock, new_task_id=clocks.counting_ids("r-"))
    again.recover()
    metered = instrumentation.Instrumentation(again, registry=CollectorRegistry(), clock=clock)
    assert value(metered, "vahana_tasks", phase="PENDING") == 2
    assert value(metered, "vahana_queue_depth", pool="-", priority="0") == 2
    assert value(metered, "vahana_tasks_submitted_total") == 0
    store.close()
