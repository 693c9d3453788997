"""TaskQueue: order (priority, deadline, submission), shapes, lazy deletion, retry delays."""

from __future__ import annotations

import dataclasses

import hypothesis.strategies as st
from builders import make_task
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from vahana.core import models
from vahana.core import queue as task_queue

NOW = 1000.0


def everything(_task: models.TaskRecord) -> bool:
    return True


def no_rank(_task: models.TaskRecord) -> int:
    return 0


def drain(queue: task_queue.TaskQueue, accept=everything, rank=no_rank) -> list[str]:
    taken = []
    while (task := queue.take(accept, rank)) is not None:
        taken.append(task.id)
    return taken


def queue_of(*tasks: models.TaskRecord, now: float = NOW) -> task_queue.TaskQueue:
    queue = task_queue.TaskQueue()
    for task in tasks:
        queue.push(task, now)
    return queue


# -- order -------------------------------------------------------------------------------
def test_higher_priority_comes_first_regardless_of_age() -> None:
    queue = queue_of(
        make_task("low").priority(1).record(seq=1),
        make_task("high").priority(9).record(seq=2),
        make_task("mid").priority(5).record(seq=3),
    )
    assert drain(queue) == ["high", "mid", "low"]


def test_among_equal_priorities_earlier_deadline_first_and_no_deadline_last() -> None:
    queue = queue_of(
        make_task("none").record(seq=1),
        make_task("late").deadline(NOW + 500).record(seq=2),
        make_task("soon").deadline(NOW + 10).record(seq=3),
    )
    assert drain(queue) == ["soon", "late", "none"]


def test_deadline_does_not_beat_priority() -> None:
    queue = queue_of(
        make_task("urgent-low").deadline(NOW + 1).record(seq=1),
        make_task("high").priority(1).record(seq=2),
    )
    assert drain(queue) == ["high", "urgent-low"]


def test_ties_go_to_submission_order_not_push_order() -> None:
    queue = queue_of(
        make_task("third").record(seq=3),
        make_task("first").record(seq=1),
        make_task("second").record(seq=2),
    )
    assert drain(queue) == ["first", "second", "third"]


def test_order_holds_across_shapes() -> None:
    queue = queue_of(
        make_task("small-old").cpu(1).record(seq=1),
        make_task("big-new").cpu(8).priority(2).record(seq=2),
        make_task("small-new").cpu(1).priority(2).record(seq=3),
    )
    assert drain(queue) == ["big-new", "small-new", "small-old"]


def test_locality_rank_breaks_priority_ties_before_deadline_and_age() -> None:
    queue = queue_of(
        make_task("old").record(seq=1),
        make_task("local").prefer(zone="eu").record(seq=2),
        make_task("important").priority(1).record(seq=3),
    )
    rank = lambda t: len(t.spec.resources.preferred_labels)  # noqa: E731
    assert drain(queue, rank=rank) == ["important", "local", "old"]


# -- shapes ------------------------------------------------------------------------------
def test_a_worker_too_small_for_the_head_still_gets_a_smaller_task_of_another_shape() -> None:
    queue = queue_of(
        make_task("big").cpu(16).priority(9).record(seq=1),
        make_task("small").cpu(1).record(seq=2),
    )
    fits_4_cpus = lambda t: t.spec.resources.cpu_cores <= 4  # noqa: E731
    taken = queue.take(fits_4_cpus, no_rank)
    assert taken is not None and taken.id == "small"
    assert "big" in queue and len(queue) == 1


def test_take_returns_none_when_no_shape_is_accepted_and_keeps_the_tasks() -> None:
    queue = queue_of(make_task("a").gpus(1).record(seq=1))
    assert queue.take(lambda t: False, no_rank) is None
    assert "a" in queue


def test_tasks_differing_only_in_pool_labels_or_timeout_are_different_shapes() -> None:
    base = make_task("x").cpu(1)
    queue = queue_of(
        base.record(seq=1, task_id="plain"),
        dataclasses.replace(base.record(seq=2, task_id="pooled"), pool="gpu"),
        make_task("y").cpu(1).labels(zone="eu").record(seq=3, task_id="labelled"),
        make_task("z").cpu(1).timeout(60).record(seq=4, task_id="timed"),
        make_task("w").cpu(1).record(seq=5, task_id="same-as-plain"),
    )
    assert len(queue.shapes()) == 4


def test_shapes_lists_only_shapes_with_ready_tasks() -> None:
    queue = queue_of(make_task("a").cpu(1).record(seq=1), make_task("b").cpu(2).record(seq=2))
    queue.remove("a")
    assert [t.spec.resources.cpu_cores for t in queue.shapes()] == [2]


# -- remove / re-push --------------------------------------------------------------------
def test_removed_task_is_never_taken() -> None:
    queue = queue_of(make_task("a").record(seq=1), make_task("b").record(seq=2))
    assert queue.remove("a") is not None
    assert queue.remove("a") is None
    assert drain(queue) == ["b"]
    assert len(queue) == 0


def test_repush_does_not_duplicate() -> None:
    task = make_task("a").record(seq=1)
    queue = queue_of(task, task)
    queue.remove("a")
    queue.push(task, NOW)
    queue.push(task, NOW)
    assert len(queue) == 1
    assert drain(queue) == ["a"]


def test_remove_then_repush_with_new_priority_uses_the_new_order() -> None:
    a = make_task("a").record(seq=1)
    queue = queue_of(a, make_task("b").priority(1).record(seq=2))
    queue.remove("a")
    queue.push(dataclasses.replace(a, spec=dataclasses.replace(a.spec, priority=5)), NOW)
    assert drain(queue) == ["a", "b"]


def test_repush_with_a_lower_priority_demotes_the_task() -> None:
    a = make_task("a").priority(5).record(seq=1)
    queue = queue_of(a, make_task("b").priority(3).record(seq=2))
    queue.push(dataclasses.replace(a, spec=dataclasses.replace(a.spec, priority=0)), NOW)
    assert drain(queue) == ["b", "a"]


def test_taken_task_is_not_resurrected_by_its_old_delayed_entry() -> None:
    task = make_task("a").record(seq=1, not_before=NOW + 10)
    queue = queue_of(task)
    queue.push(dataclasses.replace(task, not_before=0), NOW)  # re-pushed as ready
    assert drain(queue) == ["a"]
    assert queue.promote_due(NOW + 100) == 0
    assert drain(queue) == [] and len(queue) == 0


# -- retry delays ------------------------------------------------------------------------
def test_depths_count_queued_tasks_by_pool_and_priority_as_they_come_and_go() -> None:
    queue = task_queue.TaskQueue()
    a = make_task("a").priority(2).record(seq=1, pool="gpu")
    b = make_task("b").priority(2).record(seq=2, pool="gpu")
    c = make_task("c").record(seq=3, not_before=NOW + 5)  # in a backoff: queued all the same
    for task in (a, b, c):
        queue.push(task, NOW)
    assert queue.depths() == {("gpu", 2): 2, ("", 0): 1}
    assert queue.take(everything, no_rank) is not None
    queue.remove("c")
    assert queue.depths() == {("gpu", 2): 1}


def test_delayed_task_waits_for_promote_due() -> None:
    queue = queue_of(make_task("later").record(seq=1, not_before=NOW + 30))
    assert len(queue) == 1 and "later" in queue
    assert drain(queue) == []
    assert queue.promote_due(NOW + 29.9) == 0
    assert drain(queue) == []
    assert queue.promote_due(NOW + 30) == 1
    assert drain(queue) == ["later"]


def test_task_whose_backoff_already_passed_is_ready_at_once() -> None:
    queue = queue_of(make_task("a").record(seq=1, not_before=NOW - 1))
    assert queue.next_due() is None
    assert drain(queue) == ["a"]


def test_next_due_is_the_earliest_live_delay() -> None:
    queue = queue_of(
        make_task("a").record(seq=1, not_before=NOW + 50),
        make_task("b").record(seq=2, not_before=NOW + 20),
    )
    assert queue.next_due() == NOW + 20
    queue.remove("b")
    assert queue.next_due() == NOW + 50
    queue.remove("a")
    assert queue.next_due() is None


def test_a_stale_delayed_entry_is_not_counted_as_promoted() -> None:
    task = make_task("a").record(seq=1, not_before=NOW + 5)
    queue = queue_of(task)
    queue.push(dataclasses.replace(task, not_before=0), NOW)  # ready before its backoff ended
    assert queue.promote_due(NOW + 5) == 0
    assert drain(queue) == ["a"]


def test_removed_delayed_task_is_not_promoted() -> None:
    queue = queue_of(make_task("a").record(seq=1, not_before=NOW + 5))
    queue.remove("a")
    assert queue.promote_due(NOW + 10) == 0
    assert drain(queue) == []


def test_promoted_task_keeps_its_place_in_the_order() -> None:
    queue = queue_of(
        make_task("retried").priority(3).record(seq=1, not_before=NOW + 5),
        make_task("fresh").record(seq=2),
    )
    queue.promote_due(NOW + 5)
    assert drain(queue) == ["retried", "fresh"]


# -- property: random push / remove / take -----------------------------------------------
CPUS = (1.0, 2.0, 4.0)


class QueueMachine(RuleBasedStateMachine):
    """The queue against a model: a dict of ready and delayed tasks, best found by brute force."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = task_queue.TaskQueue()
        self.now = NOW
        self.records: dict[str, models.TaskRecord] = {}
        self.present: set[str] = set()
        self.taken: set[str] = set()
        self.seq = 0

    @rule(
        priority=st.integers(0, 3),
        deadline=st.sampled_from([None, 10.0, 20.0]),
        cpu=st.sampled_from(CPUS),
        delay=st.sampled_from([0.0, 0.0, 5.0]),
    )
    def push_new(self, priority: int, deadline: float | None, cpu: float, delay: float) -> None:
        self.seq += 1
        task = (
            make_task(f"t{self.seq}")
            .priority(priority)
            .deadline(deadline)
            .cpu(cpu)
            .record(seq=self.seq, not_before=self.now + delay if delay else 0.0)
        )
        self.records[task.id] = task
        self.present.add(task.id)
        self.queue.push(task, self.now)

    @precondition(lambda self: self.records)
    @rule(data=st.data(), priority=st.none() | st.integers(0, 3))
    def repush(self, data: st.DataObject, priority: int | None) -> None:
        """Re-pushes a known task (present, removed or taken), maybe with a new priority."""
        task_id = data.draw(st.sampled_from(sorted(self.records)))
        task = self.records[task_id]
        if priority is not None:
            task = dataclasses.replace(task, spec=dataclasses.replace(task.spec, priority=priority))
            self.records[task_id] = task
        self.queue.push(task, self.now)
        self.present.add(task_id)
        self.taken.discard(task_id)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.records)))
        removed = self.queue.remove(task_id)
        assert (removed is not None) == (task_id in self.present)
        self.present.discard(task_id)

    @rule(seconds=st.sampled_from([0.0, 1.0, 5.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.queue.promote_due(self.now)

    @rule(max_cpu=st.sampled_from(CPUS))
    def take(self, max_cpu: float) -> None:
        def accept(t: models.TaskRecord) -> bool:
            return t.spec.resources.cpu_cores <= max_cpu

        eligible = [
            self.records[i]
            for i in self.present
            if self.records[i].not_before <= self.now and accept(self.records[i])
        ]
        taken = self.queue.take(accept, no_rank)
        if not eligible:
            assert taken is None
            return
        assert taken is not None
        assert taken.id in self.present, f"{taken.id} was removed or already taken"
        assert task_queue.order_key(taken) == min(task_queue.order_key(t) for t in eligible)
        self.present.discard(taken.id)
        self.taken.add(taken.id)

    @invariant()
    def length_counts_each_present_task_once(self) -> None:
        assert len(self.queue) == len(self.present)
        assert {t.id for t in self.queue} == self.present

    @invariant()
    def depths_count_the_present_tasks_by_pool_and_priority(self) -> None:
        expected: dict[tuple[str, int], int] = {}
        for task_id in self.present:
            task = self.records[task_id]
            key = (task.pool, task.spec.priority)
            expected[key] = expected.get(key, 0) + 1
        assert self.queue.depths() == expected

    @invariant()
    def next_due_is_the_earliest_delayed_task(self) -> None:
        delayed = [
            self.records[i].not_before
            for i in self.present
            if self.records[i].not_before > self.now
        ]
        due = self.queue.next_due()
        if delayed:
            assert due == min(delayed)


TestQueueAgainstModel = QueueMachine.TestCase
TestQueueAgainstModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@given(st.lists(st.tuples(st.integers(-2, 2), st.sampled_from([None, 1.0, 2.0])), max_size=30))
def test_draining_yields_tasks_sorted_by_order_key(specs: list[tuple[int, float | None]]) -> None:
    tasks = [
        make_task(f"t{i}").priority(p).deadline(d).record(seq=i) for i, (p, d) in enumerate(specs)
    ]
    queue = queue_of(*reversed(tasks))
    assert drain(queue) == [t.id for t in sorted(tasks, key=task_queue.order_key)]
