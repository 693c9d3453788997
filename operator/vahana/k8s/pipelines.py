"""Task objects that depend on others: what to do when the scheduler does not know a name.

`kubectl apply -f pipeline.yaml` creates every Task at once, and their handlers run in any
order: a Task may come before the Task it depends on was accepted. So a name the scheduler
does not know is looked up among the namespace's Task objects: there but not accepted yet,
the Task waits (`kopf.TemporaryError`); nowhere, or in a cycle of dependencies, it is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, cast

from kubernetes import client as k8s

from vahana.core import dependencies
from vahana.k8s import resources


async def namespace_graph(api: k8s.ApiClient, namespace: str) -> dict[str, list[str]]:
    """Each Task of the namespace → the names its spec.dependsOn gives."""
    objects = k8s.CustomObjectsApi(api)
    listed = cast(
        Mapping[str, Any],
        await asyncio.to_thread(
            objects.list_namespaced_custom_object,
            resources.GROUP,
            resources.VERSION,
            namespace,
            resources.TASKS,
        ),
    )
    graph: dict[str, list[str]] = {}
    for item in listed.get("items", []):
        spec = item.get("spec") or {}
        graph[item["metadata"]["name"]] = [str(n) for n in spec.get("dependsOn") or ()]
    return graph


def verdict(name: str, unknown: Sequence[str], graph: Mapping[str, Sequence[str]]) -> str:
    """Why the Task `name` is refused for good ("" if it should wait and try again): a
    name in `unknown` that no Task of the namespace has, or a cycle through it."""
    missing = [n for n in unknown if n not in graph]
    if missing:
        return (
            f"spec.dependsOn: no Task named {', '.join(missing)} in this namespace — create "
            "it with this Task, or fix the name"
        )
    for cycle in dependencies.find_cycles(graph):
        if name in cycle:
            return (
                f"spec.dependsOn: the dependencies form a cycle: {' → '.join(cycle)} — "
                "remove one of them"
            )
    return ""
