"""Queue resources: their weights and quotas go to the scheduler; their status shows usage."""

from __future__ import annotations

from typing import Any

import kopf

from vahana.core import fairshare
from vahana.k8s import resources
from vahana.manifests import queues as queue_manifests

STATUS_SECONDS = 5.0
"""How often a Queue's status (running tasks, usage) is brought up to date."""


def register(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.resume(resources.GROUP, resources.VERSION, resources.QUEUES, registry=registry)
    @kopf.on.create(resources.GROUP, resources.VERSION, resources.QUEUES, registry=registry)
    @kopf.on.update(
        resources.GROUP, resources.VERSION, resources.QUEUES, field="spec", registry=registry
    )
    async def queue_apply(
        body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, patch: kopf.Patch, **_: Any
    ) -> None:
        try:
            config = queue_manifests.queue_from_resource(resources.plain(body))
        except queue_manifests.ManifestError as error:
            patch.status["conditions"] = [
                resources.condition(
                    "Ready", False, "InvalidSpec", str(error), generation=meta.get("generation")
                )
            ]
            raise kopf.PermanentError(str(error)) from error
        memo.queues[config.name] = config
        memo.scheduler.set_queues(memo.queues.values())
        patch.status["observedGeneration"] = meta.get("generation")
        patch.status["conditions"] = [
            resources.condition(
                "Ready",
                True,
                "Applied",
                "in use by the scheduler",
                generation=meta.get("generation"),
            )
        ]

    @kopf.on.delete(
        resources.GROUP, resources.VERSION, resources.QUEUES, registry=registry, optional=True
    )
    async def queue_delete(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
        if memo.queues.pop(meta["name"], None) is not None:
            memo.scheduler.set_queues(memo.queues.values())

    @kopf.timer(
        resources.GROUP,
        resources.VERSION,
        resources.QUEUES,
        interval=STATUS_SECONDS,
        registry=registry,
    )
    async def queue_status(
        meta: kopf.Meta, status: kopf.Status, memo: kopf.Memo, patch: kopf.Patch, **_: Any
    ) -> None:
        usage = memo.scheduler.queue_usage().get(meta["name"], fairshare.QueueUsage())
        now = memo.scheduler.now()
        half_life = memo.scheduler.settings.fair_share_half_life_seconds
        running = usage.total.tasks
        used = round(fairshare.decayed_at(usage, now, half_life), 1)
        if status.get("running") != running or status.get("usage") != used:
            patch.status["running"] = running
            patch.status["usage"] = used
