"""The last hour's buckets, and records as the pages show them."""

from __future__ import annotations

from builders import make_worker
from vahana.core import models
from vahana.scheduling import pool_manager
from vahana.web import series, views

START = 1_000_000.0


def test_percentiles_are_observed_samples_and_a_closed_bucket_keeps_only_them() -> None:
    hour = series.Series()
    for ms in range(1, 101):
        hour.add_latency(START, ms / 1000)
    hour.add_final(START + series.BUCKET_SECONDS, completed=True)  # opens the next bucket
    window = hour.window(START + series.BUCKET_SECONDS)
    assert window["latency_p50_ms"][-2:] == [50.0, None]
    assert window["latency_p95_ms"][-2] == 95.0
    first = hour._buckets[int(START // series.BUCKET_SECONDS)]
    assert first.latencies == [] and first.stats == (50.0, 95.0)


def test_a_bucket_keeps_a_bounded_number_of_samples() -> None:
    hour = series.Series()
    for _ in range(series.SAMPLES_KEPT * 3):
        hour.add_latency(START, 0.001)
    bucket = hour._buckets[int(START // series.BUCKET_SECONDS)]
    assert len(bucket.latencies) == series.SAMPLES_KEPT and bucket.seen == series.SAMPLES_KEPT * 3


def test_the_window_is_an_hour_and_forgets_what_is_older() -> None:
    hour = series.Series()
    hour.add_final(START, completed=True)
    later = START + 2 * 3600
    hour.add_final(later, completed=False)
    window = hour.window(later)
    assert len(window["time"]) == series.BUCKETS
    assert sum(window["completed_per_s"]) == 0 and window["failed_per_s"][-1] == 0.2
    assert len(hour._buckets) == 1


def test_pool_rows_give_managed_pools_then_the_workers_of_no_managed_pool() -> None:
    summary = pool_manager.PoolSummary(
        key="ns/batch",
        namespace="ns",
        name="batch",
        kind="slurm",
        minimum=0,
        maximum=4,
        tasks_per_worker=2,
        status={"desired": 2, "ready": 1, "busy": 1, "starting": 1, "lastError": "sbatch: down"},
        removing=False,
    )
    busy = make_worker("p1").pool("ns/batch").worker()
    busy.leases = {"t1": 1}
    loose = make_worker("l1").pool("").worker()
    rows = views.pool_rows([summary], [busy, loose])
    assert [(r["key"], r["type"], r["min"], r["max"], r["ready"], r["busy"]) for r in rows] == [
        ("ns/batch", "slurm", 0, 4, 1, 1),
        ("", "unmanaged", None, None, 1, 0),
    ]
    assert rows[0]["error"] == "sbatch: down" and rows[0]["registered"] == 1
    assert rows[1]["name"] == views.NO_POOL


def test_a_task_page_names_environment_variables_but_not_their_values() -> None:
    task = models.TaskRecord(
        id="t1",
        spec=models.TaskSpec(name="x", command="echo", environment={"API_KEY": "secret"}),
        created_at=1.0,
        seq=1,
    )
    detail = views.task_detail(task, [], pending_reason="", workers={})
    assert detail["spec"]["environment"] == ["API_KEY"]
    assert "secret" not in repr(detail)
