"""The worker's prefetch queue, driven directly: a task given while every slot is busy waits
in the queue, is started by the slot that frees, and is handed back (PENDING) when it waits
too long, when it is cancelled (CANCELLED) or when the worker drains. Tasks run for real; the
scheduler is not involved (its side is in tests/integration/test_prefetch.py)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vahana_worker import agent, executor, settings, threads
from vahana_worker.proto import worker_pb2 as pb
from waiting import wait_until

DEADLINE = 20.0


def make_worker(tmp_path: Path, **options: object) -> agent.Worker:
    config = settings.load({"worker_id": "w", "working_dir": str(tmp_path / "wd"), **options}, {})
    return agent.Worker(config, scheduler=object())  # type: ignore[arg-type]


def updates(worker: agent.Worker) -> list[tuple[str, int]]:
    return [(u.task_id, u.status) for u in worker._reporter.pending()]


def started(worker: agent.Worker, task_id: str) -> bool:
    """The task's process has started."""
    slot = worker._slots.get((task_id, 1))
    return slot is not None and slot.run.pid is not None


def give(worker: agent.Worker, task_id: str, command: str) -> None:
    worker._start_task(pb.Task(id=task_id, attempt=1, command=command))


def test_a_task_given_while_the_slot_is_busy_waits_then_runs_in_that_slot(
    tmp_path: Path,
) -> None:
    worker = make_worker(tmp_path, prefetch=2)
    gate = tmp_path / "gate"
    give(worker, "first", f"while [ ! -e {gate} ]; do sleep 0.01; done")
    give(worker, "second", "true")
    try:
        wait_until(lambda: started(worker, "first"), timeout=DEADLINE, message="first task running")
        assert updates(worker) == [("first", pb.RUNNING)]
        assert sorted(worker._leases()) == [("first", 1), ("second", 1)]  # both held
    finally:
        gate.touch()  # the first task ends, whatever happened
    wait_until(
        lambda: ("second", pb.COMPLETED) in updates(worker),
        timeout=DEADLINE,
        message="the queued task ran",
    )
    assert updates(worker) == [
        ("first", pb.RUNNING),
        ("first", pb.COMPLETED),
        ("second", pb.RUNNING),
        ("second", pb.COMPLETED),
    ]
    assert worker._task_threads.threads == 1  # the slot's thread went on with it


def test_a_task_that_starts_at_once_is_reported_running_before_its_thread_takes_it(
    tmp_path: Path,
) -> None:
    worker = make_worker(tmp_path, prefetch=1)
    held: list[object] = []
    worker._task_threads.submit = held.append  # type: ignore[method-assign]
    give(worker, "now", "true")
    give(worker, "queued", "true")
    assert len(held) == 1  # the first task's thread has not run it
    assert updates(worker) == [("now", pb.RUNNING)]  # the queued one is not running


def test_the_poll_thread_lets_a_running_report_go_before_it_starts_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the first task of a poll's answer has reported RUNNING, the poll thread lets go of
    the GIL before it starts that task's thread, once per answer; tasks handed out with a
    report's answer, whose RUNNING waits for their result, start without that pause."""
    worker = make_worker(tmp_path, max_tasks=4)
    held: list[object] = []
    worker._task_threads.submit = held.append  # type: ignore[method-assign]
    pauses: list[tuple[list[tuple[str, int]], int]] = []
    monkeypatch.setattr(
        threads, "let_others_run", lambda: pauses.append((updates(worker), len(held)))
    )

    def tasks(*ids: str) -> list[pb.Task]:
        return [pb.Task(id=i, attempt=1, command="true") for i in ids]

    worker._handle_assignment(tasks("a", "b"), [], False)
    assert pauses == [([("a", pb.RUNNING)], 0)]
    assert len(held) == 2
    worker._handle_assignment(tasks("c", "d"), [], False, streamed=True)
    assert len(pauses) == 1 and len(held) == 4


def test_a_result_waits_for_the_next_task_while_one_is_queued_or_a_call_asked_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = make_worker(tmp_path, prefetch=1)
    submits: list[tuple[str, int, float, float]] = []
    submit = worker._reporter.submit

    def spy(
        update: pb.UpdateTaskStatusRequest,
        *,
        may_wait: float = 0.0,
        may_wait_for_answer: float = 0.0,
    ) -> None:
        submits.append((update.task_id, update.status, may_wait, may_wait_for_answer))
        submit(update, may_wait=may_wait, may_wait_for_answer=may_wait_for_answer)

    monkeypatch.setattr(worker._reporter, "submit", spy)
    gate = tmp_path / "gate"
    give(worker, "first", f"while [ ! -e {gate} ]; do sleep 0.01; done")
    give(worker, "second", "true")  # queued behind it
    gate.touch()
    wait_until(
        lambda: ("second", pb.COMPLETED) in updates(worker),
        timeout=DEADLINE,
        message="both done",
    )
    hold = agent.REPORT_HOLD
    assert submits == [
        ("first", pb.RUNNING, 0.0, 0.0),  # an idle worker's task: at once
        ("first", pb.COMPLETED, hold, hold),  # the queued task's RUNNING is coming
        ("second", pb.RUNNING, 0.0, 0.0),  # it emptied the queue: the call brings the next
        ("second", pb.COMPLETED, 0.0, hold),  # only if a call in flight asked for more
    ]


def test_a_task_no_thread_can_run_is_failed_and_frees_its_slot(tmp_path: Path) -> None:
    worker = make_worker(tmp_path)

    def no_thread(job: object) -> None:
        raise RuntimeError("can't start new thread")

    worker._task_threads.submit = no_thread  # type: ignore[method-assign]
    worker._handle_assignment([pb.Task(id="t", attempt=1, command="true")], [], False)
    assert updates(worker) == [("t", pb.RUNNING), ("t", pb.FAILED)]
    assert not worker._slots and worker._free_slots() == 1


def test_the_worker_asks_for_prefetch_only_while_its_tasks_are_short(tmp_path: Path) -> None:
    worker = make_worker(tmp_path, prefetch=3, prefetch_wait="0.2s")
    assert worker._free_slots() == 1  # nothing has run yet: no prefetch
    give(worker, "short", "true")
    wait_until(lambda: not worker._slots, timeout=DEADLINE, message="short task done")
    assert worker._last_run_seconds is not None
    room = agent.prefetch_room(3, slots=1, wait=0.2, last_run=worker._last_run_seconds)
    assert room > 0, "a `true` task should take far less than 0.1 s"
    assert worker._free_slots() == 1 + room
    give(worker, "long", "sleep 30")
    assert worker._free_slots() == room  # the long one is young yet
    wait_until(
        lambda: worker._free_slots() == 0,
        timeout=DEADLINE,
        message="prefetch stops for a long task",
    )
    worker._stop_lease("long", 0, executor.StopReason.CANCELLED)


@given(
    prefetch=st.integers(0, 50),
    slots=st.integers(1, 16),
    wait=st.floats(0.01, 3600),
    last_run=st.floats(0, 7200),
)
def test_the_queue_holds_no_more_than_should_start_within_half_the_wait(
    prefetch: int, slots: int, wait: float, last_run: float
) -> None:
    room = agent.prefetch_room(prefetch, slots=slots, wait=wait, last_run=last_run)
    assert 0 <= room <= prefetch
    # The last of them starts after ceil(room / slots) runs of the tasks before it.
    assert -(-room // slots) * last_run <= wait / 2 * (1 + 1e-9)


def test_the_queue_is_as_deep_as_the_pace_of_the_last_task_allows() -> None:
    assert agent.prefetch_room(8, slots=1, wait=1.0, last_run=0.003) == 8
    assert agent.prefetch_room(8, slots=1, wait=1.0, last_run=0.0) == 8
    assert agent.prefetch_room(8, slots=1, wait=1.0, last_run=0.3) == 1
    assert agent.prefetch_room(8, slots=2, wait=1.0, last_run=0.2) == 4
    assert agent.prefetch_room(8, slots=4, wait=1.0, last_run=0.6) == 0  # would be handed back


def test_a_queued_task_that_waits_too_long_is_handed_back(tmp_path: Path) -> None:
    worker = make_worker(tmp_path, prefetch=2, prefetch_wait="0.1s")
    give(worker, "long", "sleep 30")
    give(worker, "queued", "true")
    wait_until(
        lambda: (worker._hand_back_stale(), ("queued", pb.PENDING) in updates(worker))[1],
        timeout=DEADLINE,
        message="the queued task handed back",
    )
    [back] = [u for u in worker._reporter.pending() if u.task_id == "queued"]
    assert back.attempt == 1 and "waited 0.1s in the worker's queue" in back.message
    assert worker._free_slots() == 0  # no prefetch again until a short task ends
    worker._stop_lease("long", 0, executor.StopReason.CANCELLED)


def test_a_queued_task_cancelled_is_reported_cancelled_without_running(tmp_path: Path) -> None:
    worker = make_worker(tmp_path, prefetch=2)
    marker = tmp_path / "ran"
    give(worker, "long", "sleep 30")
    give(worker, "queued", f"touch {marker}")
    worker._stop_lease("queued", 0, executor.StopReason.CANCELLED)
    [cancelled] = [u for u in worker._reporter.pending() if u.task_id == "queued"]
    assert cancelled.status == pb.CANCELLED and "before it started" in cancelled.message
    worker._stop_lease("long", 0, executor.StopReason.CANCELLED)
    wait_until(lambda: not worker._slots, timeout=DEADLINE, message="long task stopped")
    assert not marker.exists()


def test_a_draining_worker_says_draining_before_it_hands_back_its_queue(tmp_path: Path) -> None:
    """Else the scheduler, still holding the worker's long poll, gives the task right back."""
    config = settings.load(
        {"worker_id": "w", "working_dir": str(tmp_path / "wd"), "prefetch": 2, "drain_timeout": 0},
        {},
    )
    worker = agent.Worker(config, scheduler=types.SimpleNamespace(close=lambda: None))  # type: ignore[arg-type]
    said: list[str] = []
    hand_back = worker._hand_back
    worker._set_worker_status = lambda status, reason: said.append(pb.WorkerStatus.Name(status))  # type: ignore[method-assign]
    worker._hand_back = lambda spec, why: (
        said.append(f"hand back {spec.task_id}"),
        hand_back(spec, why),
    )  # type: ignore[method-assign]
    worker._reporter.flush = lambda timeout: True  # type: ignore[method-assign]  # no scheduler
    give(worker, "first", "sleep 30")
    give(worker, "second", "true")
    wait_until(lambda: started(worker, "first"), timeout=DEADLINE, message="first task running")
    worker._drain()
    assert said == ["DRAINING", "hand back second", "TERMINATED"]
