"""The CRDs as the one schema source: conversion to JSON Schema, CEL equivalents, drift checks."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from vahana.core import models
from vahana.manifests import messages, quantity, schema

ROOT = pathlib.Path(__file__).resolve().parents[3]


def pool(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "vahana.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": "p"},
        "spec": {"type": "local", "maxWorkers": 2, **spec},
    }


def problems(kind: str, obj: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    return [line for e in schema.validator(kind).iter_errors(obj) for line in messages.describe(e)]


def properties(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}".lstrip("."), sub
        yield from properties(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), Mapping):
            yield from properties(node[key], f"{path}[]")


@pytest.mark.parametrize("kind", sorted(schema.CRD_FILES))
def test_every_crd_builds_a_validator(kind: str) -> None:
    assert schema.validator(kind) is not None


@pytest.mark.parametrize("kind", sorted(schema.CRD_FILES))
def test_every_field_is_described_for_kubectl_explain(kind: str) -> None:
    missing = [
        p
        for p, sub in properties(schema.openapi_schema(kind))
        if p != "metadata" and "description" not in sub
    ]
    assert not missing


def test_packaged_crds_are_the_repository_crds() -> None:
    packaged = ROOT / "operator" / "vahana" / "crds"
    assert packaged.is_symlink() and packaged.resolve() == (ROOT / "crds").resolve()
    for name in schema.CRD_FILES.values():
        assert yaml.safe_load((ROOT / "crds" / name).read_text()) == yaml.safe_load(
            (packaged / name).read_text()
        )


def test_retry_defaults_match_the_core() -> None:
    retry = schema.openapi_schema("Task")["properties"]["spec"]["properties"]["retry"]
    defaults = {k: v["default"] for k, v in retry["properties"].items()}
    policy = models.RetryPolicy()
    assert defaults["maxTaskRetries"] == policy.max_task_retries
    assert defaults["maxInfraRetries"] == policy.max_infra_retries
    assert quantity.parse_duration(defaults["backoff"]) == policy.backoff_seconds
    assert quantity.parse_duration(defaults["maxBackoff"]) == policy.max_backoff_seconds


def test_status_enums_match_the_core() -> None:
    phases = schema.openapi_schema("Task")["properties"]["status"]["properties"]["phase"]["enum"]
    assert [p.upper() for p in phases] == [p.name.replace("_", "") for p in models.TaskPhase]
    states = schema.openapi_schema("Worker")["properties"]["status"]["properties"]["status"]
    assert states["enum"] == [s.value for s in models.WorkerState]


def test_structural_conversion() -> None:
    converted = schema.to_json_schema(
        {
            "type": "object",
            "properties": {
                "closed": {"type": "object"},
                "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "map": {"type": "object", "additionalProperties": {"type": "string"}},
                "qty": {"x-kubernetes-int-or-string": True},
            },
        }
    )
    assert converted["additionalProperties"] is False
    props = converted["properties"]
    assert props["closed"]["additionalProperties"] is False
    assert "additionalProperties" not in props["open"]
    assert props["map"]["additionalProperties"] == {"type": "string"}
    assert props["qty"]["type"] == ["integer", "string"]


def test_a_cel_rule_without_python_equivalent_fails_loudly() -> None:
    with pytest.raises(schema.SchemaError, match="no Python equivalent"):
        schema.to_json_schema(
            {"type": "object", "x-kubernetes-validations": [{"rule": "size(self) < 3"}]}
        )
    assert schema.compile_rule("self == oldSelf", "immutable") is None


@pytest.mark.parametrize("path", sorted((ROOT / "deploy" / "examples").glob("workerpool-*.yaml")))
def test_workerpool_examples_are_valid(path: pathlib.Path) -> None:
    for obj in yaml.safe_load_all(path.read_text()):
        assert problems("WorkerPool", obj) == []


@pytest.mark.parametrize(
    ("obj", "field", "words"),
    [
        (pool(minWorkers=3), "spec.minWorkers", "minWorkers must be ≤ maxWorkers"),
        (pool(maxWorkers=0), "spec.maxWorkers", "≥ 1"),
        (pool(type="kubernetes"), "spec.kubernetes", "needs a spec.kubernetes section"),
        (pool(kubernetes={"image": "x"}), "spec.kubernetes", "only allowed when type is kub"),
        (pool(type="slurm"), "spec.slurm", "needs a spec.slurm section"),
        (pool(type="baremetal", baremetal={"hosts": []}), "spec.baremetal.hosts", "at least 1"),
        (pool(type="cloud"), "spec.type", "must be one of"),
        (pool(idleTimeout="5 minutes"), "spec.idleTimeout", "duration"),
        (pool(local={"x": 1}), "spec.local.x", "unknown field"),
        (pool(resources={"cpu": "-2"}), "spec.resources.cpu", "500m"),
    ],
)
def test_bad_workerpools_name_the_field(obj: dict[str, Any], field: str, words: str) -> None:
    found = problems("WorkerPool", obj)
    assert any(path == field and words in f"{what} {hint}" for path, what, hint in found), found


def test_local_pool_needs_no_section_and_tolerations_stay_open() -> None:
    assert problems("WorkerPool", pool()) == []
    k8s = pool(type="kubernetes", kubernetes={"image": "i", "tolerations": [{"any": "thing"}]})
    assert problems("WorkerPool", k8s) == []
