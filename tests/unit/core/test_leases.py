"""Attempt fencing: only the current attempt from its worker moves a task; replays are harmless."""

from __future__ import annotations

import pytest
from builders import make_task
from vahana.core import leases, models

P = models.TaskPhase


def task_in(phase: models.TaskPhase, *, attempt: int = 2, worker: str = "w1") -> models.TaskRecord:
    return make_task("t").record(phase=phase, attempt=attempt, worker_id=worker)


def check(task, *, worker: str = "w1", attempt: int = 2, reported: models.TaskPhase):
    return leases.check_report(task, worker_id=worker, attempt=attempt, reported=reported)


def test_unknown_task_is_refused() -> None:
    assert check(None, reported=P.RUNNING).verdict == leases.Verdict.REFUSE


@pytest.mark.parametrize("reported", [P.RUNNING, P.COMPLETED, P.FAILED])
def test_stale_attempt_is_refused_naming_the_current_one(reported) -> None:
    result = check(task_in(P.RUNNING), attempt=1, reported=reported)
    assert result.verdict == leases.Verdict.REFUSE
    assert "stale attempt 1" in result.reason and "current attempt is 2" in result.reason


def test_future_attempt_is_refused() -> None:
    assert (
        check(task_in(P.RUNNING), attempt=3, reported=P.COMPLETED).verdict == leases.Verdict.REFUSE
    )


def test_wrong_worker_is_refused_even_with_the_right_attempt() -> None:
    result = check(task_in(P.ASSIGNED), worker="w2", reported=P.RUNNING)
    assert result.verdict == leases.Verdict.REFUSE
    assert "w1" in result.reason


def test_requeued_task_refuses_its_previous_worker() -> None:
    pending = task_in(P.PENDING, worker="")
    assert check(pending, reported=P.COMPLETED).verdict == leases.Verdict.REFUSE
    assert check(pending, reported=P.RUNNING).verdict == leases.Verdict.REFUSE


@pytest.mark.parametrize(
    ("current", "reported"),
    [
        (P.ASSIGNED, P.RUNNING),
        (P.ASSIGNED, P.COMPLETED),
        (P.ASSIGNED, P.FAILED),
        (P.RUNNING, P.COMPLETED),
        (P.RUNNING, P.FAILED),
        (P.RUNNING, P.TIMED_OUT),
        (P.RUNNING, P.CANCELLED),
    ],
)
def test_current_attempt_moves_the_task_on(current, reported) -> None:
    assert check(task_in(current), reported=reported).verdict == leases.Verdict.APPLY


@pytest.mark.parametrize("reported", [P.PENDING, P.ASSIGNED])
def test_a_worker_cannot_report_a_scheduler_phase(reported) -> None:
    assert check(task_in(P.RUNNING), reported=reported).verdict == leases.Verdict.REFUSE


def test_running_twice_is_a_duplicate() -> None:
    assert check(task_in(P.RUNNING), reported=P.RUNNING).verdict == leases.Verdict.DUPLICATE


@pytest.mark.parametrize("final", sorted(models.FINAL_PHASES))
def test_duplicate_final_report_is_acknowledged_harmlessly(final) -> None:
    result = check(task_in(final), reported=final)
    assert result.verdict == leases.Verdict.DUPLICATE
    assert final.value in result.reason


def test_late_running_after_final_is_a_duplicate() -> None:
    assert check(task_in(P.COMPLETED), reported=P.RUNNING).verdict == leases.Verdict.DUPLICATE


@pytest.mark.parametrize(
    ("final", "reported"),
    [
        (P.COMPLETED, P.FAILED),
        (P.FAILED, P.COMPLETED),
        (P.CANCELLED, P.COMPLETED),
        (P.TIMED_OUT, P.FAILED),
    ],
)
def test_a_final_phase_cannot_change(final, reported) -> None:
    result = check(task_in(final), reported=reported)
    assert result.verdict == leases.Verdict.REFUSE
    assert f"already {final.value}" in result.reason
