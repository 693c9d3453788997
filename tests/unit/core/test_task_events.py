"""Which Events a Task gets from two successive views of it."""

from __future__ import annotations

import dataclasses

from vahana.core import events, models

P = models.TaskPhase


def task(phase: models.TaskPhase, attempt: int, **fields: object) -> models.TaskRecord:
    record = models.TaskRecord(
        id="t-1", spec=models.TaskSpec(name="a", command="true"), created_at=0.0, seq=1
    )
    return dataclasses.replace(record, phase=phase, attempt=attempt, **fields)  # type: ignore[arg-type]


def reasons(steps: list[tuple[models.TaskRecord, str]]) -> list[list[str]]:
    seen: events.Seen | None = None
    out = []
    for record, pending in steps:
        found, seen = events.task_events(seen, record, pending)
        out.append([event.reason for event in found])
    return out


def test_each_step_once_and_nothing_when_nothing_changed() -> None:
    steps = [
        (task(P.PENDING, 0), "no worker yet"),
        (task(P.PENDING, 0), "no worker yet"),
        (task(P.RUNNING, 1, worker_id="w"), ""),
        (task(P.COMPLETED, 1, worker_id="w", exit_code=0, started_at=1.0, finished_at=2.5), ""),
    ]
    assert reasons(steps) == [["Queued"], [], ["Scheduled", "Started"], ["Completed"]]


def test_a_retry_is_told_once_whether_its_requeue_was_seen_or_not() -> None:
    seen_requeue = [
        (task(P.RUNNING, 1, worker_id="w"), ""),
        (task(P.PENDING, 1, message="command exited with code 1"), "backing off"),
        (task(P.RUNNING, 2, worker_id="w"), ""),
    ]
    assert reasons(seen_requeue) == [
        ["Queued", "Scheduled", "Started"],
        ["Retrying", "Queued"],
        ["Scheduled", "Started"],
    ]
    missed = [(task(P.PENDING, 0), "x"), (task(P.COMPLETED, 2, exit_code=0), "")]
    assert reasons(missed) == [["Queued"], ["Retrying", "Completed"]]


def test_failures_carry_the_exit_code_and_the_limit_hit() -> None:
    failed = task(P.FAILED, 1, exit_code=137, message="memory limit: command exited with code 137")
    [queued, event], _ = events.task_events(None, failed, "")
    assert queued.reason == "Queued"
    assert (event.type, event.reason) == ("Warning", "Failed")
    assert "exit code 137" in event.message and "memory limit" in event.message


def test_a_run_that_fell_between_two_writes_still_tells_its_whole_story() -> None:
    done = task(P.COMPLETED, 1, worker_id="w", exit_code=0, started_at=1.0, finished_at=1.0)
    assert reasons([(done, "")]) == [["Queued", "Scheduled", "Completed"]]
    quick = [(task(P.PENDING, 0), "x"), (done, "")]
    assert reasons(quick) == [["Queued"], ["Scheduled", "Completed"]]
    seen_running = [(task(P.RUNNING, 1, worker_id="w"), ""), (done, "")]
    assert reasons(seen_running) == [["Queued", "Scheduled", "Started"], ["Completed"]]


def test_pools_tell_scaling_and_new_start_errors_once() -> None:
    up = events.pool_events({"desired": 0}, {"desired": 2, "busy": 0, "lastError": None})
    assert [(e.reason, e.message) for e in up] == [
        ("Scaled", "scaled up to 2 worker(s) (was 0; 0 busy)")
    ]
    assert events.pool_events({"desired": 2}, {"desired": 2}) == []
    failed = events.pool_events({"desired": 2}, {"desired": 2, "lastError": "creating Job: 422"})
    assert [(e.type, e.reason) for e in failed] == [("Warning", "StartFailed")]
    same = {"desired": 2, "lastError": "creating Job: 422"}
    assert events.pool_events(same, dict(same)) == []


def test_a_retry_that_began_between_two_writes_tells_why_from_its_attempt_record() -> None:
    before = events.task_events(None, task(P.RUNNING, 1, worker_id="w"), "")[1]
    rerun = task(P.RUNNING, 2, worker_id="w2")
    assert events.untold_retry(before, rerun) == 1
    found, seen = events.task_events(before, rerun, "", "command exited with code 3")
    assert [(e.reason, e.message) for e in found][0] == (
        "Retrying",
        "attempt 1 ended: command exited with code 3",
    )
    assert events.untold_retry(seen, rerun) is None  # told once
    # A requeue seen as such carries its own reason: nothing to look up.
    assert events.untold_retry(before, task(P.PENDING, 1, message="lost")) is None
