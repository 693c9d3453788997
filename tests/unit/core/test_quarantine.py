"""Black-hole workers: the streak rule, its charges and refunds."""

from __future__ import annotations

from vahana.core import models, quarantine

INFRA = models.FailureKind.INFRASTRUCTURE
POLICY = quarantine.QuarantinePolicy(failures=5, window_seconds=60)


def run(
    outcomes: list[tuple[str, models.FailureKind | None, float]],
) -> list[quarantine.Verdict]:
    streak = quarantine.Streak()
    verdicts = []
    for task_id, kind, now in outcomes:
        verdict = quarantine.judge(
            streak, task_id=task_id, failed_in_worker=kind == INFRA, now=now,
            message="cannot make sandbox",
            policy=POLICY,
        )  # fmt: skip
        verdicts.append(verdict)
        streak = verdict.streak
    return verdicts


def test_five_infrastructure_failures_within_the_window_quarantine_and_refund_the_first() -> None:
    verdicts = run([(f"t{i}", INFRA, 100.0 + i) for i in range(5)])
    assert [v.charge for v in verdicts] == [True, False, False, False, False]
    assert [bool(v.quarantine_reason) for v in verdicts] == [False] * 4 + [True]
    assert verdicts[-1].refund == ("t0",)
    assert "last 5 attempts failed in the worker within 4s" in verdicts[-1].quarantine_reason
    assert "cannot make sandbox" in verdicts[-1].quarantine_reason


def test_a_success_or_a_task_error_ends_the_streak() -> None:
    outcomes = [("a", INFRA, 1.0), ("b", INFRA, 2.0), ("c", None, 3.0)]
    outcomes += [(f"d{i}", INFRA, 4.0 + i) for i in range(4)]
    outcomes += [("e", models.FailureKind.TASK_ERROR, 9.0), ("f", INFRA, 10.0)]
    verdicts = run(outcomes)
    assert not any(v.quarantine_reason for v in verdicts)
    assert [v.charge for v in verdicts] == [
        True,
        False,
        True,
        True,
        False,
        False,
        False,
        True,
        True,
    ]


def test_failures_spread_wider_than_the_window_do_not_quarantine() -> None:
    verdicts = run([(f"t{i}", INFRA, 100.0 + 20 * i) for i in range(8)])
    assert not any(v.quarantine_reason for v in verdicts)
    # Still one charge for the whole streak: a slow black hole cannot drain budgets either.
    assert [v.charge for v in verdicts].count(True) == 1


def test_a_task_failing_again_in_the_streak_is_charged_each_time() -> None:
    # One task failing over and over is the task's doing: it ends on its budget as before.
    verdicts = run([("poison", INFRA, 1.0), ("other", INFRA, 2.0), ("poison", INFRA, 3.0)])
    assert [v.charge for v in verdicts] == [True, False, True]
    verdicts = run([("only", INFRA, float(i)) for i in range(5)])
    assert all(v.charge for v in verdicts)
    assert verdicts[-1].quarantine_reason and verdicts[-1].refund == ("only",) * 5


def test_a_zero_policy_never_quarantines() -> None:
    never = quarantine.QuarantinePolicy(failures=0)
    streak = quarantine.Streak()
    for i in range(50):
        verdict = quarantine.judge(
            streak,
            task_id=f"t{i}",
            failed_in_worker=True,
            now=float(i),
            message="",
            policy=never,
        )
        assert not verdict.quarantine_reason
        streak = verdict.streak
