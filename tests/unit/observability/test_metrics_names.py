"""Metric names follow Prometheus conventions, and the Grafana dashboard queries only real ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

from vahana.observability import instrumentation

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "vahana-dashboard.json"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def exposed_names(metered: instrumentation.Instrumentation) -> dict[str, str]:
    """Every sample name the registry can expose (with or without samples yet) → its type."""
    names: dict[str, str] = {}
    for family in metered.registry.collect():
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = family.type
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return exprs


def test_names_have_the_prefix_and_units_and_counters_end_in_total(
    metered: instrumentation.Instrumentation,
) -> None:
    families = {family.name: family for family in metered.registry.collect()}
    assert families, "no metric registered"
    for name, family in families.items():
        assert name.startswith("vahana_"), name
        assert family.documentation, f"{name} has no help text"
        if family.type == "histogram":
            assert name.endswith("_seconds"), f"{name}: histograms here measure seconds"
        assert not name.endswith("_total"), f"{name}: the _total suffix is the counter's sample"
        for label in ("task_id", "worker_id", "id"):
            assert all(label not in s.labels for s in family.samples), f"{name} has {label}"


def test_the_metrics_the_issue_names_exist(metered: instrumentation.Instrumentation) -> None:
    names = exposed_names(metered)
    for wanted in (
        "vahana_tasks",
        "vahana_tasks_completed_total",
        "vahana_queue_depth",
        "vahana_task_dispatch_latency_seconds_bucket",
        "vahana_task_duration_seconds_bucket",
        "vahana_task_requeues_total",
        "vahana_task_attempt_failures_total",
        "vahana_workers",
        "vahana_worker_heartbeats_received_total",
        "vahana_workers_marked_unhealthy_total",
        "vahana_grpc_server_handled_total",
        "vahana_grpc_server_handling_seconds_bucket",
        "vahana_pool_operations_total",
        "vahana_pool_operation_errors_total",
    ):
        assert wanted in names, wanted


def test_every_metric_the_dashboard_queries_exists(
    metered: instrumentation.Instrumentation,
) -> None:
    names = exposed_names(metered)
    exprs = dashboard_expressions()
    queried = {name for expr in exprs for name in re.findall(r"\bvahana_[a-z0-9_]+", expr)}
    assert len(queried) >= 12
    assert sorted(queried - names.keys()) == []


def test_the_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"type", "title", "gridPos"} <= panel.keys(), panel
        for target in panel.get("targets", []):
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in (
        "queue depth",
        "phase",
        "throughput",
        "dispatch",
        "duration",
        "workers by status",
        "grpc errors",
        "pool adapter errors",
    ):
        assert topic in titles, topic
