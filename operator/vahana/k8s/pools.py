"""WorkerPools as the operator runs them: an adapter each, scaled to the queue it can serve.

Scaling up starts workers through the pool's adapter; scaling down only ever asks idle workers
to drain (a drained worker finishes and exits by itself), so no busy worker is killed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from vahana.core import models, scaling
from vahana.k8s import resources
from vahana.manifests import quantity
from vahana.pools import base, jobs, kubernetes, local
from vahana.scheduling import scheduler

log = logging.getLogger(__name__)
SUPPORTED = ("kubernetes", "local")


class PoolSpecError(ValueError):
    """The WorkerPool cannot be run as specified; the message says why and how to fix it."""


@dataclasses.dataclass
class ManagedPool:
    namespace: str
    name: str
    uid: str
    key: str
    kind: str
    minimum: int
    maximum: int
    tasks_per_worker: int
    capacity: models.Resources
    idle_timeout: float
    adapter: base.WorkerPool
    last_error: str = ""


@dataclasses.dataclass(frozen=True)
class PoolDefaults:
    server_address: str
    """Address workers started by pools use to reach this scheduler."""
    heartbeat_interval_seconds: float
    state_dir: Path


class PoolManager:
    def __init__(
        self, sched: scheduler.Scheduler, api: k8s.ApiClient, defaults: PoolDefaults
    ) -> None:
        self._scheduler = sched
        self._api = api
        self._defaults = defaults
        self._pools: dict[str, ManagedPool] = {}

    def lookup(self, key: str) -> tuple[str, str, str] | None:
        pool = self._pools.get(key)
        return (pool.namespace, pool.name, pool.uid) if pool else None

    def upsert(self, namespace: str, name: str, uid: str, spec: Mapping[str, Any]) -> ManagedPool:
        """Creates the pool's adapter, or updates its limits when the spec changed."""
        key = resources.pool_key(namespace, name)
        kind = spec["type"]
        if kind not in SUPPORTED:
            raise PoolSpecError(
                f"spec.type: {kind!r} pools are not supported by this operator yet "
                f"(supported: {', '.join(SUPPORTED)})"
            )
        need = spec.get("resources") or {}
        capacity = models.Resources(
            cpu_cores=quantity.parse_cpu(need.get("cpu", "1")),
            memory_bytes=quantity.parse_memory(need.get("memory", "1Gi")),
            gpus=int(need.get("gpu", 0)),
            labels=dict(spec.get("labels") or {}),
        )
        existing = self._pools.get(key)
        adapter = existing.adapter if existing and existing.kind == kind else None
        if adapter is None:
            adapter = self._adapter(kind, namespace, name, uid, key, spec, capacity)
        elif isinstance(adapter, kubernetes.KubernetesPool):
            adapter.spec = self._kubernetes_spec(namespace, name, uid, key, spec, capacity)
        pool = ManagedPool(
            namespace=namespace,
            name=name,
            uid=uid,
            key=key,
            kind=kind,
            minimum=int(spec.get("minWorkers", 0)),
            maximum=int(spec["maxWorkers"]),
            tasks_per_worker=int(spec.get("tasksPerWorker", 1)),
            capacity=capacity,
            idle_timeout=quantity.parse_duration(spec.get("idleTimeout", "5m")),
            adapter=adapter,
        )
        self._pools[key] = pool
        return pool

    def _adapter(
        self,
        kind: str,
        namespace: str,
        name: str,
        uid: str,
        key: str,
        spec: Mapping[str, Any],
        capacity: models.Resources,
    ) -> base.WorkerPool:
        if kind == "kubernetes":
            return kubernetes.KubernetesPool(
                self._api, self._kubernetes_spec(namespace, name, uid, key, spec, capacity)
            )
        state = self._defaults.state_dir / "pools" / namespace / name
        return local.LocalPool(
            local.LocalPoolConfig(
                server_address=self._defaults.server_address,
                working_dir=state / "workers",
                log_dir=state / "logs",
                name=key,
                tasks_per_worker=int(spec.get("tasksPerWorker", 1)),
                heartbeat_interval_seconds=self._defaults.heartbeat_interval_seconds,
                extra_args=(f"--cpu-cores={capacity.cpu_cores:g}",)
                + tuple(f"--label={k}={v}" for k, v in sorted(capacity.labels.items())),
            )
        )

    def _kubernetes_spec(
        self,
        namespace: str,
        name: str,
        uid: str,
        key: str,
        spec: Mapping[str, Any],
        capacity: models.Resources,
    ) -> jobs.KubernetesPoolSpec:
        section = spec.get("kubernetes") or {}
        need = spec.get("resources") or {}
        if section.get("namespace") and section["namespace"] != namespace:
            raise PoolSpecError(
                "spec.kubernetes.namespace: worker Jobs run in the WorkerPool's own namespace "
                f"({namespace}) so that they can be owned and garbage-collected with it — "
                "create the WorkerPool in the namespace where the workers should run"
            )
        heartbeat = spec.get("heartbeatInterval")
        return jobs.KubernetesPoolSpec(
            pool=name,
            namespace=namespace,
            pool_uid=uid,
            pool_key=key,
            image=section["image"],
            server_address=self._defaults.server_address,
            service_account=section.get("serviceAccountName", ""),
            node_selector=section.get("nodeSelector") or {},
            tolerations=section.get("tolerations") or (),
            image_pull_policy=section.get("imagePullPolicy", ""),
            cpu=str(need.get("cpu", "1")),
            memory=str(need.get("memory", "1Gi")),
            gpus=capacity.gpus,
            tasks_per_worker=int(spec.get("tasksPerWorker", 1)),
            labels=capacity.labels,
            heartbeat_interval_seconds=quantity.parse_duration(heartbeat)
            if heartbeat
            else self._defaults.heartbeat_interval_seconds,
        )

    async def reconcile(self, key: str) -> dict[str, Any]:
        """One round: replace exited workers, scale to demand, report. Returns the status."""
        pool = self._pools[key]
        adapter = pool.adapter
        in_pool = await asyncio.to_thread(adapter.list_workers)
        gone = [
            w
            for w in in_pool
            if w.state in (base.PoolWorkerState.EXITED, base.PoolWorkerState.FAILED)
        ]
        for worker in gone:
            if worker.state == base.PoolWorkerState.FAILED:
                pool.last_error = f"worker {worker.worker_id}: {worker.detail}"
        if gone:
            await asyncio.to_thread(adapter.stop_workers, [w.worker_id for w in gone])
        live = [w for w in in_pool if w not in gone and w.state != base.PoolWorkerState.STOPPING]
        registered = self._scheduler.list_workers(pool=key)
        busy = sum(1 for w in registered if w.leases)
        pending = self._scheduler.pending_for_pool(key, pool.capacity)
        desired = scaling.desired_workers(
            minimum=pool.minimum,
            maximum=pool.maximum,
            pending=pending,
            busy_workers=busy,
            tasks_per_worker=pool.tasks_per_worker,
        )
        draining = sum(1 for w in registered if w.state == models.WorkerState.DRAINING)
        active = len(live) - draining
        if active < desired:
            try:
                await asyncio.to_thread(adapter.start_workers, desired - active)
            except base.PoolError as error:  # reported on the pool; retried next round
                pool.last_error = str(error)
                log.warning("pool=%s %s", key, pool.last_error)
        elif active > desired:
            for worker_id in scaling.idle_to_release(
                registered, excess=active - desired, now=time.time(), idle_timeout=pool.idle_timeout
            ):
                log.info("scale-down: draining idle worker_id=%s pool=%s", worker_id, key)
                self._scheduler.request_drain(worker_id)
        ready = sum(1 for w in registered if w.state != models.WorkerState.DRAINING)
        starting = sum(1 for w in live if w.state == base.PoolWorkerState.STARTING)
        return {
            "desired": desired,
            "starting": starting,
            "ready": ready,
            "busy": busy,
            "lastError": pool.last_error or None,
        }

    async def remove(self, key: str) -> int:
        """Drains the pool's workers; returns how many are still registered (0: all gone)."""
        pool = self._pools.get(key)
        registered = self._scheduler.list_workers(pool=key)
        for worker in registered:
            if worker.state != models.WorkerState.DRAINING:
                self._scheduler.request_drain(worker.id)
        if pool is None:
            return 0
        if registered:
            return len(registered)
        await asyncio.to_thread(pool.adapter.close)
        del self._pools[key]
        return 0
