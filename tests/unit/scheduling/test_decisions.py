"""Decisions without a store: what an operation decides is its plan, and reverting the plan
puts memory back exactly as it was."""

from __future__ import annotations

import consistency
from builders import make_registration, make_task
from vahana.core import clock as clocks
from vahana.core import models
from vahana.scheduling import decisions, records, tables
from vahana.scheduling import plan as plans

P = models.TaskPhase


class Memory:
    """The tables alone, and a way to decide on them."""

    def __init__(self) -> None:
        self.tables = tables.Tables()
        self.now = 100.0
        self.ids = clocks.counting_ids()

    def decide(self, decide: object, *args: object) -> plans.Plan:
        plan = plans.Plan("test")
        plan.result = decide(tables.Change(self.tables, plan, self.now), *args)  # type: ignore[operator]
        return plan


def test_a_poll_plans_the_records_to_write_and_what_to_tell() -> None:
    memory = Memory()
    memory.decide(decisions.register, make_registration("w1").slots(2).registration())
    memory.decide(decisions.submit, [make_task("a").submission()], {}, memory.ids)
    plan = memory.decide(decisions.poll, "w1", 2)
    [task] = plan.result.tasks
    assert (task.phase, task.attempt, task.worker_id) == (P.ASSIGNED, 1, "w1")
    assert plan.batch.updated == {task.id: task}
    assert list(plan.batch.attempts) == [(task.id, 1)]
    assert plan.batch.workers == {}  # leases are rebuilt from the tasks: not written
    assert plan.emitted == {task.id: task}
    assert memory.tables.tasks[task.id] is task and memory.tables.workers["w1"].leases == {
        task.id: 1
    }


def test_reverting_a_plan_puts_memory_back_as_it_was() -> None:
    memory = Memory()
    memory.decide(decisions.register, make_registration("w1").slots(2).registration())
    [a, b] = memory.decide(
        decisions.submit, [make_task("a").submission(), make_task("b").submission()], {}, memory.ids
    ).result
    memory.decide(decisions.poll, "w1", 2)
    before = consistency.memory_view(memory.tables)
    originals = dict(memory.tables.tasks)
    # One operation doing much: a report finishing one task and handing back the other,
    # then a poll taking the one handed back.
    plan = memory.decide(
        decisions.report_and_poll,
        "w1",
        [
            records.StatusReport(a, 1, P.COMPLETED, exit_code=0),
            records.StatusReport(b, 1, P.PENDING),
        ],
        {},
        2,
    )
    assert memory.tables.finished[a].phase == P.COMPLETED
    assert [t.id for t in plan.result[1].tasks] == [b]
    memory.tables.revert(plan, memory.now)
    assert consistency.memory_view(memory.tables) == before
    assert all(memory.tables.tasks[i] is originals[i] for i in originals)  # the same records
    assert originals[a].phase == P.ASSIGNED  # never changed in place
