"""Queue objects (YAML files, or the resource from the API server) → `fairshare.QueueConfig`.

`vahana run` and `vahana server` take them with `--queue-file F` (and a task file may hold
them beside its Tasks); the operator from Queue resources. Each is validated against the Queue
CRD's schema first, then for what the schema cannot say (one quota per pool, a quota that
bounds nothing), and every problem names its document and field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vahana.core import fairshare
from vahana.manifests import errors, messages, quantity, schema, yamlload

KIND = "Queue"
LIST_KINDS = ("List", "QueueList")

ManifestError = errors.ManifestError


def parse_queue_documents(
    text: str, *, source: str, others_allowed: bool = False
) -> list[fairshare.QueueConfig]:
    """Every Queue in `text` (documents separated by `---`, or a `kind: List`).

    `others_allowed`: documents of another kind are skipped (a task file with queues in it);
    else a file with no Queue at all is refused. Raises `ManifestError` listing every problem.
    """
    try:
        documents = yamlload.load_documents(text)
    except yamlload.YAMLProblem as exc:
        raise errors.ManifestError(
            [errors.Problem(source, f"invalid YAML: {exc.message}", hint=exc.hint, line=exc.line)]
        ) from None
    found: list[tuple[int, int, Any]] = []
    for index, document in enumerate(documents, start=1):
        if isinstance(document, Mapping) and document.get("kind") in LIST_KINDS:
            items = document.get("items")
            items = items if isinstance(items, list) else []
            found.extend((index, number, item) for number, item in enumerate(items, start=1))
        elif document is not None:
            found.append((index, 0, document))
    problems: list[errors.Problem] = []
    queues: dict[str, fairshare.QueueConfig] = {}
    for index, item, obj in found:
        if others_allowed and not (isinstance(obj, Mapping) and obj.get("kind") == KIND):
            continue
        config = _queue(obj, source, index, item, problems)
        if config is None:
            continue
        if config.name in queues:
            problems.append(
                errors.Problem(
                    source,
                    "used twice in the file",
                    "metadata.name",
                    "give every Queue its own name",
                    document=index,
                    item=item,
                )
            )
            continue
        queues[config.name] = config
    if not problems and not queues and not others_allowed:
        hint = f"write objects with apiVersion: {schema.API_VERSION} and kind: {KIND}"
        problems.append(errors.Problem(source, "no Queue found", hint=hint))
    if problems:
        raise errors.ManifestError(problems)
    return list(queues.values())


def queue_from_resource(obj: Mapping[str, Any]) -> fairshare.QueueConfig:
    """One Queue object (from the API server) as a QueueConfig; raises `ManifestError`."""
    name = obj.get("metadata", {}).get("name", "")
    problems: list[errors.Problem] = []
    config = _queue(obj, f"Queue {name}", 0, 0, problems)
    if config is None or problems:
        raise errors.ManifestError(problems)
    return config


def _queue(
    obj: Any, source: str, document: int, item: int, problems: list[errors.Problem]
) -> fairshare.QueueConfig | None:
    name = ""

    def problem(path: str, message: str, hint: str = "") -> errors.Problem:
        return errors.Problem(
            source, message, path, hint, document=document, item=item, task=name, kind="queue"
        )

    if not isinstance(obj, Mapping):
        hint = "each document must be a Queue: apiVersion, kind, metadata, spec"
        problems.append(
            problem("", f"expected a Queue, found {messages.describe_value(obj)}", hint)
        )
        return None
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        name = metadata["name"]
    if obj.get("apiVersion") != schema.API_VERSION or obj.get("kind") != KIND:
        hint = f"write apiVersion: {schema.API_VERSION} and kind: {KIND}"
        problems.append(problem("kind", f"must be a {KIND} of {schema.API_VERSION}", hint))
        return None
    described = [
        line
        for error in schema.validator(KIND).iter_errors(obj)
        for line in messages.describe(error)
    ]
    if described:
        problems.extend(problem(*line) for line in sorted(described, key=lambda line: line[0]))
        return None
    spec = obj["spec"]
    quotas: list[fairshare.Quota] = []
    pools: set[str] = set()
    for number, raw in enumerate(spec.get("quotas", ())):
        path = f"spec.quotas[{number}]"
        pool = raw.get("pool", "")
        if pool in pools:
            where = f"pool {pool}" if pool else "all pools"
            hint = "merge them into one quota"
            problems.append(problem(f"{path}.pool", f"a second quota for {where}", hint))
            continue
        pools.add(pool)
        if not any(key in raw for key in ("tasks", "cpu", "memory", "gpu")):
            hint = "give at least one of tasks, cpu, memory, gpu"
            problems.append(problem(path, "bounds nothing", hint))
            continue
        try:
            cpu = quantity.parse_cpu(raw["cpu"]) if "cpu" in raw else None
            memory = quantity.parse_memory(raw["memory"]) if "memory" in raw else None
        except (ValueError, ArithmeticError) as exc:
            problems.append(problem(path, str(exc), "use a quantity such as 8, 500m or 64Gi"))
            continue
        quotas.append(
            fairshare.Quota(
                pool=pool,
                tasks=raw.get("tasks"),
                cpu_cores=cpu,
                memory_bytes=memory,
                gpus=raw.get("gpu"),
            )
        )
    return fairshare.QueueConfig(
        name=name,
        weight=float(spec.get("weight", 1.0)),
        quotas=tuple(quotas),
        borrowing=bool(spec.get("borrowing", True)),
    )
