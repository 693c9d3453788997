"""A worker whose process, Job or pilot its pool saw end: lost at once (`worker_exited`), on
memory alone (the plan it makes), through the Scheduler, and from an adapter's thread."""

from __future__ import annotations

import asyncio
import logging
import threading

import consistency
import pytest
from builders import TaskBuilder, make_registration, make_task
from drive import poll_ids, register, report, submit
from test_decisions import Memory
from vahana.core import models
from vahana.scheduling import decisions, exits, records

P = models.TaskPhase
W = models.WorkerState
KILLED = "its process (pid 4242) was killed by signal 9"


def running_on_w1(memory: Memory, *tasks: TaskBuilder) -> list[str]:
    """The tasks dispatched to worker w1 of pool ns/p; the first one RUNNING."""
    memory.decide(decisions.register, make_registration("w1").slots(2).pool("ns/p").registration())
    ids: list[str] = memory.decide(
        decisions.submit, [t.submission() for t in tasks], {}, memory.ids
    ).result
    memory.decide(decisions.poll, "w1", 2)
    memory.decide(decisions.report, "w1", [records.StatusReport(ids[0], 1, P.RUNNING)], {})
    return ids


# -- the decision, on memory alone ---------------------------------------------------------------
def test_an_exited_worker_loses_its_attempts_requeues_its_tasks_and_is_removed() -> None:
    memory = Memory()
    a, b = running_on_w1(
        memory, make_task("a").retries(infra=1, backoff=0), make_task("b").retries(infra=1)
    )
    plan = memory.decide(decisions.worker_exited, "w1", KILLED)
    assert plan.result is True
    live = memory.tables
    assert "w1" not in live.workers and plan.removed == ["w1"]
    for task_id in (a, b):
        task = live.tasks[task_id]
        assert (task.phase, task.worker_id, task.infra_failures) == (P.PENDING, "", 1)
        assert task.not_before <= memory.now  # the first loss: it reruns at once, elsewhere
        attempt = plan.batch.attempts[(task_id, 1)]
        assert (attempt.phase, attempt.failure_kind) == (
            P.FAILED,
            models.FailureKind.INFRASTRUCTURE,
        )
        assert attempt.message == f"worker w1 exited: {KILLED}"
    assert sorted(t.id for t in live.queue) == sorted([a, b])
    assert plan.batch.workers == {"w1": None}  # deleted from the store
    assert None in plan.wake  # the waiting workers look at the queue again
    [(level, message, args)] = [line for line in plan.logs if "exited" in line[1]]
    assert level == logging.WARNING
    assert message % args == (
        f"worker exited worker_id=w1 pool=ns/p task_ids={','.join(sorted([a, b]))}: {KILLED}"
    )


def test_its_plan_reverts_to_exactly_what_was_before() -> None:
    memory = Memory()
    running_on_w1(memory, make_task("a"), make_task("b"))
    before = consistency.memory_view(memory.tables)
    plan = memory.decide(decisions.worker_exited, "w1", KILLED)
    memory.tables.revert(plan, memory.now)
    assert consistency.memory_view(memory.tables) == before


def test_a_task_out_of_infrastructure_retries_fails_with_the_reason() -> None:
    memory = Memory()
    [a] = running_on_w1(memory, make_task("a").retries(infra=0))
    memory.decide(decisions.worker_exited, "w1", KILLED)
    task = memory.tables.finished[a]
    assert task.phase == P.FAILED
    assert task.message.startswith(f"worker w1 exited: {KILLED}")
    assert "infrastructure retries exhausted" in task.message


def test_a_worker_that_said_terminated_or_never_registered_is_left_alone() -> None:
    memory = Memory()
    memory.decide(decisions.register, make_registration("w1").registration())
    memory.decide(decisions.set_worker_status, "w1", W.TERMINATED, "drained")
    before = consistency.memory_view(memory.tables)
    for worker_id in ("w1", "never-registered"):
        plan = memory.decide(decisions.worker_exited, worker_id, "exit code 0")
        assert plan.result is False
        assert not plan.batch and not plan.undo and not plan.logs and not plan.removed
        assert plan.reads == frozenset({("worker", worker_id)})  # waits for nothing else
    assert consistency.memory_view(memory.tables) == before


def test_a_worker_given_up_on_already_is_left_to_the_health_monitor() -> None:
    memory = Memory()
    running_on_w1(memory, make_task("a").retries(infra=2, backoff=0))
    memory.decide(decisions.set_worker_status, "w1", W.UNHEALTHY, "disk full")
    before = consistency.memory_view(memory.tables)
    plan = memory.decide(decisions.worker_exited, "w1", KILLED)
    # Its tasks were requeued when it went UNHEALTHY; it stays listed, with its reason, until
    # the health monitor removes it.
    assert plan.result is False and not plan.batch and not plan.undo
    assert consistency.memory_view(memory.tables) == before


# -- through the scheduler ----------------------------------------------------------------------
def test_the_scheduler_commits_the_loss_then_tells_and_a_late_report_is_refused(
    sched, store
) -> None:
    removed: list[str] = []
    sched.add_removal_listener(removed.append)
    register(sched, make_registration("w1"))
    [a] = submit(sched, make_task("a").retries(infra=1, backoff=0))
    assert poll_ids(sched, "w1") == [a]
    report(sched, "w1", a, 1, P.RUNNING)
    assert sched.worker_exited("w1", KILLED) is True
    assert removed == ["w1"] and sched.list_workers() == []
    assert [w.id for w in store.load_workers()] == []
    [attempt] = store.list_attempts(a)
    assert (attempt.phase, attempt.failure_kind, attempt.message) == (
        P.FAILED,
        models.FailureKind.INFRASTRUCTURE,
        f"worker w1 exited: {KILLED}",
    )
    assert store.get_task(a).phase == P.PENDING
    assert report(sched, "w1", a, 1, P.COMPLETED, exit_code=0).stale  # the dead attempt
    register(sched, make_registration("w2"))
    assert poll_ids(sched, "w2") == [a]
    assert report(sched, "w2", a, 2, P.COMPLETED, exit_code=0).accepted
    assert sched.worker_exited("w1", KILLED) is False  # told twice (listener and reconcile)
    assert [x.phase for x in store.list_attempts(a)] == [P.FAILED, P.COMPLETED]


@pytest.mark.timeout(10)
def test_an_exit_heard_on_an_adapters_thread_is_told_on_the_loop(sched) -> None:
    register(sched, make_registration("w1"))
    [a] = submit(sched, make_task("a").retries(infra=1, backoff=0))
    poll_ids(sched, "w1")
    reporter = exits.ExitReporter(sched)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        sched.start()  # the writer thread: the operation awaits its commit
        changed = asyncio.Event()
        sched.add_listener(lambda task: changed.set())
        listener = reporter.listener(loop)
        thread = threading.Thread(target=listener, args=("w1", KILLED))  # as watch_exit does
        thread.start()
        await asyncio.wait_for(changed.wait(), 5)
        thread.join()
        assert sched.get_task(a).phase == P.PENDING and sched.list_workers() == []
        register(sched, make_registration("w2"))
        await reporter.close()
        listener("w2", "heard after close")  # not told: the scheduler is stopping
        after = asyncio.Event()
        loop.call_soon(after.set)  # runs after the callback the listener scheduled
        await after.wait()
        await reporter.close()
        await sched.close()

    asyncio.run(scenario())
    assert [w.id for w in sched.list_workers()] == ["w2"]
