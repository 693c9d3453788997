"""Why a pending task waits: each reason names what the user can act on."""

from __future__ import annotations

from builders import GiB, make_task, make_worker
from vahana.core import models, reasons

NOW = 1000.0
W = models.WorkerState


def explain(task_builder, *workers: models.WorkerRecord, **fields) -> str:
    return reasons.explain_wait(task_builder.record(**fields), list(workers), NOW)


def test_no_workers_at_all() -> None:
    assert explain(make_task("t")) == (
        "no worker registered in any pool yet (waiting for workers to start)"
    )


def test_no_worker_in_the_tasks_pool() -> None:
    other = make_worker("w").pool("cpu").worker()
    reason = explain(make_task("t").pool("gpu"), other)
    assert reason == "no worker registered in pool gpu yet (waiting for workers to start)"


def test_only_draining_or_unhealthy_workers() -> None:
    reason = explain(
        make_task("t"),
        make_worker("a").worker(state=W.DRAINING),
        make_worker("b").worker(state=W.UNHEALTHY),
    )
    assert reason == "no live worker in any pool (2 draining or unhealthy)"


def test_too_little_cpu_names_the_largest_worker() -> None:
    reason = explain(
        make_task("t").cpu(8), make_worker("a").cpu(2).worker(), make_worker("b").cpu(4).worker()
    )
    assert reason == "no worker can run it: needs 8 cpu, the largest worker has 4"


def test_too_little_memory() -> None:
    reason = explain(make_task("t").memory(4 * GiB), make_worker("a").memory(GiB).worker())
    assert reason == "no worker can run it: needs 4096Mi memory, the largest worker has 1024Mi"


def test_too_few_gpus() -> None:
    reason = explain(make_task("t").gpus(2), make_worker("a").gpus(1).worker())
    assert reason == "no worker can run it: needs 2 gpu(s), the largest worker has 1"


def test_missing_labels_are_listed() -> None:
    reason = explain(
        make_task("t").labels(zone="us", disk="ssd"),
        make_worker("a").labels(zone="eu", disk="ssd").worker(),
    )
    assert reason == "no worker can run it: no worker has label(s) zone=us"


def test_several_shortfalls_are_all_named() -> None:
    reason = explain(
        make_task("t").cpu(8).gpus(1).labels(zone="us"),
        make_worker("a").cpu(2).labels(zone="eu").worker(),
    )
    assert "needs 8 cpu" in reason and "needs 1 gpu(s)" in reason and "zone=us" in reason


def test_requirements_met_only_by_different_workers() -> None:
    reason = explain(
        make_task("t").cpu(8).gpus(1),
        make_worker("big").cpu(16).worker(),
        make_worker("gpu").cpu(2).gpus(1).worker(),
    )
    assert reason == "no worker can run it: no single worker meets all its requirements together"


def test_all_matching_workers_busy() -> None:
    reason = explain(
        make_task("t").cpu(2),
        make_worker("a").cpu(4).worker(state=W.BUSY),
        make_worker("b").cpu(4).worker(),
        make_worker("small").cpu(1).worker(),
    )
    assert reason == "all 2 matching worker(s) are busy"


def test_retry_backoff_names_the_last_failure() -> None:
    reason = explain(
        make_task("t"), make_worker("a").worker(), not_before=NOW + 30, message="exit code 1"
    )
    assert reason.startswith("retry backoff until ")
    assert reason.endswith(" after: exit code 1")


def test_backoff_that_has_passed_is_not_a_reason() -> None:
    reason = explain(make_task("t"), make_worker("a").worker(), not_before=NOW)
    assert not reason.startswith("retry backoff")


def test_no_allocation_lasts_the_timeout() -> None:
    reason = explain(
        make_task("t").timeout(600), make_worker("a").allocation_ends_at(NOW + 60).worker()
    )
    assert reason == "no worker's allocation lasts the task's 600s timeout"


def test_one_allocation_long_enough_means_busy() -> None:
    reason = explain(
        make_task("t").timeout(600),
        make_worker("a").allocation_ends_at(NOW + 60).worker(),
        make_worker("b").allocation_ends_at(NOW + 6000).worker(),
    )
    assert reason == "all 2 matching worker(s) are busy"


def test_cancel_requested_says_cancelling() -> None:
    assert explain(make_task("t"), cancel_requested=True) == "cancelling"


def test_a_reason_s_kind_leaves_out_its_figures() -> None:
    busy = "all {} matching worker(s) are busy"
    assert reasons.kind(busy.format(1)) == reasons.kind(busy.format(12))
    waiting = "no worker registered in pool gpu yet (waiting for workers to start)"
    assert reasons.kind(waiting) != reasons.kind(busy.format(1))
    assert reasons.kind("retry backoff until 12:00:01.5") == "retry backoff until #:#:#"
