"""The reporter batches, keeps order, retries on transport errors and never drops a result."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from vahana_worker import backoff, reporter
from vahana_worker.proto import worker_pb2 as pb


class Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "scheduler down"


class FakeSink:
    """Records every batch; fails while `down` is set; can hold a call to let updates pile up."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.down = False
        self.hold = threading.Event()
        self.hold.set()
        self.in_call = threading.Event()
        self.cancel_ids: set[str] = set()
        self.refuse_ids: set[str] = set()

    def batch_update(
        self, updates: list[pb.UpdateTaskStatusRequest], max_tasks: int = 0
    ) -> pb.BatchUpdateTaskStatusResponse:
        self.in_call.set()
        self.hold.wait()
        if self.down:
            raise Unavailable()
        self.batches.append([(u.task_id, u.status) for u in updates])
        return pb.BatchUpdateTaskStatusResponse(
            success=True,
            results=[
                pb.UpdateResult(
                    task_id=u.task_id,
                    attempt=u.attempt,
                    accepted=u.task_id not in self.refuse_ids,
                    cancel=u.task_id in self.cancel_ids,
                )
                for u in updates
            ],
        )

    def update_task_status(self, update: pb.UpdateTaskStatusRequest) -> pb.UpdateTaskStatusResponse:
        raise AssertionError("batch is supported")


def update(task_id: str, status: int) -> pb.UpdateTaskStatusRequest:
    return pb.UpdateTaskStatusRequest(task_id=task_id, worker_id="w", attempt=1, status=status)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def started(sink: FakeSink) -> Iterator[tuple[reporter.Reporter, list[tuple[str, int]]]]:
    cancels: list[tuple[str, int]] = []
    rep = reporter.Reporter(
        sink,
        breaker=backoff.CircuitBreaker(failure_threshold=100, reset_timeout=1.0),
        on_cancel=lambda task_id, attempt: cancels.append((task_id, attempt)),
        on_unknown_worker=lambda: None,
        make_backoff=lambda: backoff.Backoff(base=0.01, cap=0.05),
    )
    thread = threading.Thread(target=rep.run, daemon=True)
    thread.start()
    yield rep, cancels
    rep.close()
    thread.join(timeout=5)


def test_updates_piling_up_during_a_call_go_in_one_next_call(
    sink: FakeSink, started: tuple[reporter.Reporter, list[tuple[str, int]]]
) -> None:
    rep, _ = started
    sink.hold.clear()
    rep.submit(update("a", pb.RUNNING))
    wait_for(sink.in_call.is_set)
    for status in (pb.COMPLETED,):
        rep.submit(update("a", status))
    rep.submit(update("b", pb.RUNNING))
    rep.submit(update("b", pb.FAILED))
    sink.hold.set()
    assert rep.flush(timeout=10)
    assert sink.batches == [
        [("a", pb.RUNNING)],
        [("a", pb.COMPLETED), ("b", pb.RUNNING), ("b", pb.FAILED)],
    ]


def test_results_survive_an_outage_in_order(
    sink: FakeSink, started: tuple[reporter.Reporter, list[tuple[str, int]]]
) -> None:
    rep, _ = started
    sink.down = True
    rep.submit(update("a", pb.RUNNING))
    rep.submit(update("a", pb.COMPLETED))
    wait_for(lambda: sink.in_call.is_set())
    assert not rep.flush(timeout=0.2)
    rep.submit(update("b", pb.TIMED_OUT))
    assert len(rep.pending()) >= 1
    sink.down = False
    rep.retry_now()
    assert rep.flush(timeout=10)
    delivered = [item for batch in sink.batches for item in batch]
    assert delivered == [("a", pb.RUNNING), ("a", pb.COMPLETED), ("b", pb.TIMED_OUT)]


def test_cancel_in_a_result_reaches_the_agent_and_refusals_are_forgotten(
    sink: FakeSink, started: tuple[reporter.Reporter, list[tuple[str, int]]]
) -> None:
    rep, cancels = started
    sink.cancel_ids.add("c")
    sink.refuse_ids.add("stale")
    rep.submit(update("c", pb.RUNNING))
    rep.submit(update("stale", pb.COMPLETED))
    assert rep.flush(timeout=10)
    assert cancels == [("c", 1)]
    assert rep.pending() == []


def test_an_update_in_flight_still_counts_as_pending(
    started: tuple[reporter.Reporter, list[tuple[str, int]]], sink: FakeSink
) -> None:
    # The agent reports a lease as held while its result is undelivered: in flight included.
    rep, _ = started
    sink.hold.clear()
    rep.submit(update("t1", pb.COMPLETED))
    wait_for(sink.in_call.is_set)
    assert [(u.task_id, u.status) for u in rep.pending()] == [("t1", pb.COMPLETED)]
    sink.hold.set()
    assert rep.flush(timeout=10)
    assert rep.pending() == []


class DispatchingSink(FakeSink):
    """Answers every batch with one new task when the reporter says it has a free slot."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    def batch_update(
        self, updates: list[pb.UpdateTaskStatusRequest], max_tasks: int = 0
    ) -> pb.BatchUpdateTaskStatusResponse:
        response = super().batch_update(updates, max_tasks)
        self.asked.append(max_tasks)
        if max_tasks:
            response.tasks.append(pb.Task(id=f"next-{len(self.asked)}", command="true", attempt=1))
        return response


@contextlib.contextmanager
def running(sink: FakeSink, **options: Any) -> Iterator[reporter.Reporter]:
    """A reporter on `sink` with its sender running; closed afterwards."""
    rep = reporter.Reporter(
        sink,
        breaker=backoff.CircuitBreaker(failure_threshold=100, reset_timeout=1.0),
        on_cancel=lambda task_id, attempt: None,
        on_unknown_worker=lambda: None,
        **options,
    )
    thread = threading.Thread(target=rep.run, daemon=True)
    thread.start()
    try:
        yield rep
    finally:
        rep.close()
        thread.join(timeout=5)


def test_a_report_asks_for_as_many_tasks_as_slots_are_free_and_hands_them_on() -> None:
    sink = DispatchingSink()
    free = [1]
    handed: list[str] = []
    with running(
        sink,
        free_slots=lambda: free[0],
        on_dispatch=lambda response: handed.extend(t.id for t in response.tasks),
    ) as rep:
        rep.submit(update("done", pb.COMPLETED))
        assert rep.flush(timeout=10)
        free[0] = 0
        rep.submit(update("other", pb.RUNNING))
        assert rep.flush(timeout=10)
    assert sink.asked == [1, 0]
    assert handed == ["next-1"]


@pytest.mark.parametrize("free", [2, 0])
def test_an_update_waits_for_the_answer_only_of_a_call_that_asked_for_tasks(free: int) -> None:
    sink = FakeSink()
    sink.hold.clear()
    with running(sink, free_slots=lambda: free) as rep:
        rep.submit(update("a", pb.COMPLETED))
        wait_for(sink.in_call.is_set)  # asks for `free` tasks
        rep.submit(update("b", pb.COMPLETED), may_wait_for_answer=60.0)
        sink.hold.set()
        if free:  # held for the tasks the answer may bring (a slot_idle says none is idle)
            assert not rep.flush(timeout=0.3)
            assert sink.batches == [[("a", pb.COMPLETED)]]
        else:  # nothing asked for: it goes with the next call
            assert rep.flush(timeout=10)
            assert sink.batches == [[("a", pb.COMPLETED)], [("b", pb.COMPLETED)]]


@pytest.mark.parametrize("answer_fills_the_slot", [False, True])
def test_updates_held_for_an_answer_go_once_it_leaves_a_slot_idle(
    answer_fills_the_slot: bool,
) -> None:
    sink = DispatchingSink() if answer_fills_the_slot else FakeSink()
    sink.hold.clear()
    started: list[str] = []
    with running(
        sink,
        free_slots=lambda: 1,
        slot_idle=lambda: not started,
        on_dispatch=lambda response: started.extend(t.id for t in response.tasks),
    ) as rep:
        rep.submit(update("a", pb.COMPLETED))
        wait_for(sink.in_call.is_set)  # the call asks for a task
        rep.submit(update("b", pb.COMPLETED), may_wait_for_answer=60.0)
        sink.hold.set()
        if answer_fills_the_slot:  # its RUNNING is yet to come: still held
            assert not rep.flush(timeout=0.3)
        else:  # the slot is idle: it goes, asking for its next task
            assert rep.flush(timeout=10)
            assert sink.batches == [[("a", pb.COMPLETED)], [("b", pb.COMPLETED)]]


def test_delivered_waits_for_what_was_submitted_so_far_not_for_what_comes_after() -> None:
    sink = FakeSink()
    with running(sink) as rep:
        rep.submit(update("a", pb.RUNNING))
        assert rep.delivered(timeout=10)
        rep.submit(update("b", pb.RUNNING), may_wait=60.0)  # held
        assert not rep.delivered(timeout=0.2)
        assert not rep.flush(timeout=0.2)


def test_a_running_report_that_may_wait_goes_with_its_result_in_one_call(
    sink: FakeSink, started: tuple[reporter.Reporter, list[tuple[str, int]]]
) -> None:
    rep, _ = started
    rep.submit(update("a", pb.RUNNING), may_wait=60.0)
    assert not rep.flush(timeout=0.2)  # held for the result
    rep.submit(update("a", pb.COMPLETED))  # may not wait: both go now
    assert rep.flush(timeout=10)
    assert sink.batches == [[("a", pb.RUNNING), ("a", pb.COMPLETED)]]


def test_the_sender_is_woken_only_when_a_report_changes_what_it_waits_for() -> None:
    class CountingCondition(threading.Condition):
        notified = 0

        def notify_all(self) -> None:
            CountingCondition.notified += 1
            super().notify_all()

    rep = reporter.Reporter(
        FakeSink(),
        breaker=backoff.CircuitBreaker(failure_threshold=100, reset_timeout=1.0),
        on_cancel=lambda task_id, attempt: None,
        on_unknown_worker=lambda: None,
    )
    rep._cond = CountingCondition()
    rep.submit(update("a", pb.RUNNING), may_wait=60.0)  # the first: the sender waits for one
    assert CountingCondition.notified == 1
    rep.submit(update("a", pb.COMPLETED), may_wait=60.0)  # the hold ends no sooner
    rep.submit(update("b", pb.RUNNING), may_wait=120.0)
    assert CountingCondition.notified == 1
    rep.submit(update("b", pb.COMPLETED), may_wait=1.0)  # sooner
    assert CountingCondition.notified == 2
    rep.submit(update("c", pb.RUNNING))  # may not wait: all go now
    assert CountingCondition.notified == 3
    rep.submit(update("c", pb.COMPLETED))  # they go already
    assert CountingCondition.notified == 3


def test_a_held_report_goes_alone_when_its_wait_is_over(
    sink: FakeSink, started: tuple[reporter.Reporter, list[tuple[str, int]]]
) -> None:
    rep, _ = started
    rep.submit(update("a", pb.RUNNING), may_wait=0.05)
    assert rep.flush(timeout=10)
    assert sink.batches == [[("a", pb.RUNNING)]]
    rep.submit(update("b", pb.RUNNING))  # an idle worker's task reports at once
    assert rep.flush(timeout=10)
    assert sink.batches[-1] == [("b", pb.RUNNING)]


class Invalid(grpc.RpcError):
    def __init__(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.INVALID_ARGUMENT

    def details(self) -> str:
        return self._details


class OlderScheduler(FakeSink):
    """Validates like a scheduler that predates hand-backs: PENDING cannot be reported, and a
    batch holding one is refused whole."""

    def __init__(self) -> None:
        super().__init__()
        self.singles: list[tuple[str, int, int]] = []

    def batch_update(
        self, updates: list[pb.UpdateTaskStatusRequest], max_tasks: int = 0
    ) -> pb.BatchUpdateTaskStatusResponse:
        if any(u.status in (pb.PENDING, pb.ASSIGNED) for u in updates):
            raise Invalid("updates[1].status: PENDING cannot be reported")
        return super().batch_update(updates, max_tasks)

    def update_task_status(self, update: pb.UpdateTaskStatusRequest) -> pb.UpdateTaskStatusResponse:
        if update.status in (pb.PENDING, pb.ASSIGNED):
            raise Invalid("status: cannot be reported")
        self.singles.append((update.task_id, update.status, update.failure_kind))
        return pb.UpdateTaskStatusResponse(success=True)


def test_a_batch_refused_as_invalid_goes_one_by_one_and_a_hand_back_as_the_old_failure() -> None:
    sink = OlderScheduler()
    rep = reporter.Reporter(
        sink,
        breaker=backoff.CircuitBreaker(failure_threshold=100, reset_timeout=1.0),
        on_cancel=lambda task_id, attempt: None,
        on_unknown_worker=lambda: None,
        make_backoff=lambda: backoff.Backoff(base=0.01, cap=0.05),
    )
    thread = threading.Thread(target=rep.run, daemon=True)
    thread.start()
    try:
        # Held until the third, which takes all three in one batch.
        rep.submit(update("done", pb.COMPLETED), may_wait=60)
        rep.submit(update("queued", pb.PENDING), may_wait=60)
        rep.submit(update("broken", pb.ASSIGNED))  # invalid everywhere: dropped, not retried
        assert rep.flush(timeout=10)
        assert sink.singles == [
            ("done", pb.COMPLETED, pb.FAILURE_KIND_UNSPECIFIED),
            ("queued", pb.FAILED, pb.INFRASTRUCTURE),
        ]
        rep.submit(update("next", pb.COMPLETED))  # the reporter is not stuck
        assert rep.flush(timeout=10)
        assert sink.batches[-1] == [("next", pb.COMPLETED)]
    finally:
        rep.close()
        thread.join(timeout=5)
