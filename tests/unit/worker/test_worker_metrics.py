"""The worker's optional /metrics: valid Prometheus text, served by the standard library."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from vahana_worker import metrics, settings


def snapshot() -> metrics.Snapshot:
    counter = metrics.OutcomeCounter()
    counter.add("completed")
    counter.add("completed")
    counter.add("failed")
    return metrics.Snapshot(
        active_tasks=1,
        task_slots=4,
        outcomes=counter.counts(),
        breaker_state="half-open",
        buffered_updates=3,
    )


def test_the_exposition_parses_with_the_reference_parser() -> None:
    families = {f.name: f for f in text_string_to_metric_families(metrics.render(snapshot()))}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert families["vahana_worker_tasks"].type == "counter"  # the parser strips _total
    assert samples[("vahana_worker_tasks_total", (("outcome", "completed"),))] == 2
    assert samples[("vahana_worker_tasks_total", (("outcome", "timed_out"),))] == 0
    assert samples[("vahana_worker_active_tasks", ())] == 1
    assert samples[("vahana_worker_task_slots", ())] == 4
    assert samples[("vahana_worker_circuit_breaker_state", (("state", "half-open"),))] == 1
    assert samples[("vahana_worker_circuit_breaker_state", (("state", "closed"),))] == 0
    assert samples[("vahana_worker_status_updates_buffered", ())] == 3


def test_the_server_answers_at_metrics_and_closes_twice() -> None:
    server = metrics.MetricsServer(snapshot, host="127.0.0.1", port=0).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as reply:
            assert reply.headers["Content-Type"] == metrics.CONTENT_TYPE
            assert b"vahana_worker_active_tasks 1" in reply.read()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5)
        assert missing.value.code == 404
    finally:
        server.close()
    server.close()


def test_the_flag_is_off_by_default_and_checked() -> None:
    assert settings.load({}, env={}).metrics_port == 0
    assert settings.load({"metrics_port": "9465"}, env={}).metrics_port == 9465
    with pytest.raises(settings.SettingsError, match="metrics_port"):
        settings.load({"metrics_port": "70000"}, env={})
