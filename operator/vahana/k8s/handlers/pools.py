"""WorkerPool resources: keep their workers between min and max; drain them on delete."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from vahana.core import events as core_events
from vahana.k8s import events as k8s_events
from vahana.k8s import resources, secrets
from vahana.scheduling import pool_manager


def register(registry: kopf.OperatorRegistry, *, resync_seconds: float) -> None:
    @kopf.on.resume(resources.GROUP, resources.VERSION, resources.POOLS, registry=registry)
    @kopf.on.create(resources.GROUP, resources.VERSION, resources.POOLS, registry=registry)
    @kopf.on.update(
        resources.GROUP, resources.VERSION, resources.POOLS, field="spec", registry=registry
    )
    async def pool_apply(
        meta: kopf.Meta, spec: kopf.Spec, memo: kopf.Memo, patch: kopf.Patch, **_: Any
    ) -> None:
        try:
            await _upsert(meta, spec, memo)
        except secrets.SecretError as error:
            # Not permanent: the Secret or the permission may come later; the timer retries.
            patch.status["conditions"] = [
                resources.condition(
                    "Ready",
                    False,
                    "SecretUnavailable",
                    str(error),
                    generation=meta.get("generation"),
                )
            ]
            patch.status["lastError"] = str(error)
            return
        except pool_manager.PoolSpecError as error:
            patch.status["conditions"] = [
                resources.condition(
                    "Ready", False, "InvalidSpec", str(error), generation=meta.get("generation")
                )
            ]
            patch.status["lastError"] = str(error)
            raise kopf.PermanentError(str(error)) from error
        patch.status["observedGeneration"] = meta.get("generation")

    @kopf.timer(
        resources.GROUP,
        resources.VERSION,
        resources.POOLS,
        interval=resync_seconds,
        registry=registry,
    )
    async def pool_reconcile(
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        memo: kopf.Memo,
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        before = dict(status)
        key = pool_manager.pool_key(meta["namespace"], meta["name"])
        if memo.pools.lookup(key) is None:
            try:
                await _upsert(meta, spec, memo)
            except (pool_manager.PoolSpecError, secrets.SecretError):
                return  # reported by pool_apply
        now = await memo.pools.reconcile(key)
        ready = now["ready"] >= min(now["desired"], 1) if now["desired"] else True
        message = f"{now['ready']} ready, {now['busy']} busy, {now['desired']} desired" + (
            f"; last error: {now['lastError']}" if now["lastError"] else ""
        )
        recorder = getattr(memo, "events", None)
        if recorder is not None:
            ref = k8s_events.ObjectRef(
                "WorkerPool",
                f"{resources.GROUP}/{resources.VERSION}",
                meta["namespace"],
                meta["name"],
                meta["uid"],
            )
            for event in core_events.pool_events(before, now):
                await recorder.record(ref, event)
        now["conditions"] = [
            resources.condition(
                "Ready",
                ready,
                "Scaled" if ready else "Starting",
                message,
                generation=meta.get("generation"),
            )
        ]
        patch.status.update(now)

    @kopf.on.delete(resources.GROUP, resources.VERSION, resources.POOLS, registry=registry)
    async def pool_delete(meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
        left = await memo.pools.remove(pool_manager.pool_key(meta["namespace"], meta["name"]))
        if left:
            raise kopf.TemporaryError(f"draining: {left} worker(s) still registered", delay=2)


async def _upsert(meta: kopf.Meta, spec: kopf.Spec, memo: kopf.Memo) -> None:
    """Builds or updates the pool's adapter, with the ssh Secrets it names written to files."""
    namespace, name = meta["namespace"], meta["name"]
    plain = await asyncio.to_thread(
        secrets.materialize, memo.api, namespace, spec, memo.secrets_dir / namespace / name
    )
    memo.pools.upsert(namespace, name, meta["uid"], plain)
