"""WorkerPool objects from YAML files → `PoolManifest` records, for the embedded scheduler.

`vahana server --pool-file F` and `vahana run --pool-file F` run the pools of F without a
cluster. Each object is validated against the WorkerPool CRD's schema (the same check the API
server makes), all or nothing, and every problem is reported with its document and field path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from vahana.core import models
from vahana.manifests import errors, messages, quantity, schema, yamlload

KIND = "WorkerPool"
LIST_KINDS = ("List", "WorkerPoolList")
DEFAULT_NAMESPACE = "default"

ManifestError = errors.ManifestError


@dataclasses.dataclass(frozen=True)
class PoolManifest:
    """One WorkerPool of a file: where it lives and its validated spec."""

    namespace: str
    name: str
    spec: Mapping[str, Any]


def with_defaults(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with the CRD's defaults where a field is missing, as the API server fills them
    in when a WorkerPool is created; pool files get them here. The defaults are read from
    crds/, never copied into code."""
    filled = dict(spec)
    properties = schema.openapi_schema(KIND)["properties"]["spec"]["properties"]
    for field, declared in properties.items():
        if "default" in declared and field not in filled:
            filled[field] = declared["default"]
    return filled


def pool_spec(spec: Mapping[str, Any]) -> models.PoolSpec:
    """The fields every pool type shares, as a typed record (the CRD's defaults applied); the
    type's own section (`spec.slurm`, …) stays with its adapter. Raises ValueError naming the
    field for a value the schema let through but that cannot be used."""
    full = with_defaults(spec)

    def duration(field: str) -> float | None:
        value = full.get(field)
        if value is None or value == "":
            return None
        try:
            return quantity.parse_duration(value)
        except ValueError as error:
            raise ValueError(f"spec.{field}: {error}") from None

    return models.PoolSpec(
        type=str(full["type"]),
        min_workers=int(full["minWorkers"]),
        max_workers=int(full["maxWorkers"]),
        tasks_per_worker=int(full["tasksPerWorker"]),
        idle_timeout_seconds=duration("idleTimeout") or 0.0,
        drain_timeout_seconds=duration("drainTimeout") or 0.0,
        walltime_seconds=duration("walltime"),
        heartbeat_interval_seconds=duration("heartbeatInterval"),
    )


def parse_pool_documents(text: str, *, source: str) -> list[PoolManifest]:
    """Every WorkerPool in `text` (documents separated by `---`, or a `kind: List`).

    Raises `ManifestError` listing every problem, a name used twice in one namespace, and a
    file with no WorkerPool at all.
    """
    try:
        documents = yamlload.load_documents(text)
    except yamlload.YAMLProblem as exc:
        raise errors.ManifestError(
            [errors.Problem(source, f"invalid YAML: {exc.message}", hint=exc.hint, line=exc.line)]
        ) from None
    found: list[tuple[int, int, Any]] = []
    problems: list[errors.Problem] = []
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        if isinstance(document, Mapping) and document.get("kind") in LIST_KINDS:
            items = document.get("items")
            if not isinstance(items, list):
                problems.append(
                    errors.Problem(
                        source, "must be a list of WorkerPool objects", "items", document=index
                    )
                )
                continue
            found.extend((index, number, item) for number, item in enumerate(items, start=1))
        else:
            found.append((index, 0, document))
    pools: list[PoolManifest] = []
    seen: set[tuple[str, str]] = set()
    for index, item, obj in found:
        pool = _pool(obj, source, index, item, problems)
        if pool is None:
            continue
        if (pool.namespace, pool.name) in seen:
            problems.append(
                errors.Problem(
                    source, "used twice in the file", "metadata.name", document=index, item=item
                )
            )
            continue
        seen.add((pool.namespace, pool.name))
        pools.append(pool)
    if not problems and not pools:
        hint = f"write objects with apiVersion: {schema.API_VERSION} and kind: {KIND}"
        problems.append(errors.Problem(source, "no WorkerPool found", hint=hint))
    if problems:
        raise errors.ManifestError(problems)
    return pools


def _pool(
    obj: Any, source: str, document: int, item: int, problems: list[errors.Problem]
) -> PoolManifest | None:
    def problem(path: str, message: str, hint: str = "") -> errors.Problem:
        return errors.Problem(source, message, path, hint, document=document, item=item, task=name)

    name = ""
    if not isinstance(obj, Mapping):
        hint = "each document must be a WorkerPool: apiVersion, kind, metadata, spec"
        problems.append(
            problem("", f"expected a WorkerPool, found {messages.describe_value(obj)}", hint)
        )
        return None
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        name = metadata["name"]
    found: list[errors.Problem] = []
    if obj.get("apiVersion") != schema.API_VERSION:
        found.append(problem("apiVersion", f"must be {schema.API_VERSION}"))
    if obj.get("kind") != KIND:
        found.append(problem("kind", f"must be {KIND}", "this file is read for WorkerPool objects"))
    if not found:
        described = [
            line
            for error in schema.validator(KIND).iter_errors(obj)
            for line in messages.describe(error)
        ]
        found = [problem(*line) for line in sorted(described, key=lambda line: line[0])]
    if found:
        problems.extend(found)
        return None
    assert isinstance(metadata, Mapping)
    return PoolManifest(
        namespace=metadata.get("namespace") or DEFAULT_NAMESPACE,
        name=name,
        spec=dict(obj["spec"]),
    )
