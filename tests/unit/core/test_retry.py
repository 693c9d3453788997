"""Retry policy: separate task and infrastructure budgets; exponential backoff with a cap."""

from __future__ import annotations

import pytest
from builders import make_task
from vahana.core import models, retry

NOW = 1000.0
TASK, INFRA = models.FailureKind.TASK_ERROR, models.FailureKind.INFRASTRUCTURE


def failed(*, task: int = 0, infra: int = 0) -> models.TaskRecord:
    return make_task("t").record(task_failures=task, infra_failures=infra)


def test_no_task_retries_by_default_gives_up_at_the_first_task_failure() -> None:
    decision = retry.after_failure(failed(task=1), TASK, NOW)
    assert not decision.retry
    assert "task retries exhausted (0 of 0 used)" in decision.reason


@pytest.mark.parametrize(("used", "retries"), [(1, True), (2, True), (3, False)])
def test_task_budget_counts_reruns(used: int, retries: bool) -> None:
    task = make_task("t").retries(task=2).record(task_failures=used)
    assert retry.after_failure(task, TASK, NOW).retry is retries


def test_infrastructure_failures_do_not_spend_the_task_budget() -> None:
    task = make_task("t").retries(task=0, infra=2).record(infra_failures=2)
    assert retry.after_failure(task, INFRA, NOW).retry
    task.infra_failures = 3
    decision = retry.after_failure(task, INFRA, NOW)
    assert (
        not decision.retry and "infrastructure retries exhausted (2 of 2 used)" in decision.reason
    )


def test_task_failures_do_not_spend_the_infrastructure_budget() -> None:
    task = make_task("t").retries(task=1, infra=0).record(task_failures=1, infra_failures=0)
    assert retry.after_failure(task, TASK, NOW).retry
    # Many earlier infra failures still leave the task budget intact.
    task = make_task("t").retries(task=1, infra=5).record(task_failures=1, infra_failures=5)
    assert retry.after_failure(task, TASK, NOW).retry


def test_staging_failures_spend_the_task_budget() -> None:
    task = make_task("t").retries(task=0, infra=5).record(task_failures=1)
    assert not retry.after_failure(task, models.FailureKind.STAGING, NOW).retry


def test_retry_waits_for_the_backoff() -> None:
    task = make_task("t").retries(task=3, backoff=2).record(task_failures=2)
    decision = retry.after_failure(task, TASK, NOW)
    assert decision.retry and decision.not_before == NOW + 4
    assert decision.reason == "retry 2 of 3 after task_error"


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 0), (1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (30, 10)]
)
def test_backoff_doubles_up_to_the_cap(failures: int, delay: float) -> None:
    policy = models.RetryPolicy(backoff_seconds=1, max_backoff_seconds=10)
    assert retry.backoff_seconds(policy, failures) == delay


def test_zero_backoff_retries_at_once() -> None:
    assert retry.backoff_seconds(models.RetryPolicy(backoff_seconds=0), 5) == 0


def test_backoff_counts_failures_of_both_kinds() -> None:
    task = (
        make_task("t")
        .retries(task=5, infra=5, backoff=1, max_backoff=100)
        .record(task_failures=2, infra_failures=1)
    )
    assert retry.after_failure(task, TASK, NOW).not_before == NOW + 4
    repeated = (
        make_task("t")
        .retries(task=5, infra=5, backoff=1, max_backoff=100)
        .record(task_failures=1, infra_failures=2)
    )
    assert retry.after_failure(repeated, INFRA, NOW).not_before == NOW + 2


def test_the_first_loss_of_a_worker_reruns_the_task_at_once() -> None:
    task = make_task("t").retries(infra=3, backoff=5).record(infra_failures=1)
    assert retry.after_failure(task, INFRA, NOW).not_before == NOW
