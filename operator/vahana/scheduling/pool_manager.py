"""WorkerPools as the scheduler runs them: an adapter each, scaled to the queue it can serve.

The same manager serves the operator (WorkerPool resources) and the embedded default (WorkerPool
YAML files); adapters come from factories keyed by the pool's `type`.

Scaling up starts workers through the pool's adapter; scaling down only ever asks idle workers
to drain (a drained worker finishes and exits by itself), so no busy worker is killed.

A worker whose process, Job or pilot ended is told to the scheduler at once (`exits`): by the
adapter's exit listener the moment it ends, when the adapter watches its workers, else by the
next reconcile round that lists it ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vahana.core import clock as clocks
from vahana.core import demand, models, scaling
from vahana.manifests import pools as pool_manifests
from vahana.manifests import quantity
from vahana.pools import base
from vahana.scheduling import exits, scheduler

log = logging.getLogger(__name__)


def pool_key(namespace: str, name: str) -> str:
    """The scheduler's name of a WorkerPool: pools are namespaced, the scheduler's are not."""
    return f"{namespace}/{name}"


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
    walltime_seconds: float = 0.0
    """How long each worker's allocation lasts (slurm, baremetal); 0: unlimited."""
    last_error: str = ""
    spec: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    bootstrap_secret: str = dataclasses.field(default="", repr=False)
    """The secret the adapter was given for new workers (see PoolDefaults.pool_secret)."""
    removing: bool = False
    """Being removed: its workers drain and none is started or replaced any more."""
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock, repr=False)
    """Held by a reconcile round and by the final close: a round that started before the
    removal cannot start workers after the adapter was closed."""


@dataclasses.dataclass(frozen=True)
class PoolDefaults:
    server_address: str
    """Address workers started by pools use to reach this scheduler."""
    heartbeat_interval_seconds: float
    state_dir: Path
    remote_server_address: str = ""
    """Address slurm and baremetal pilots use to reach this scheduler; empty: server_address."""
    worker_binary_url: str = ""
    """Where remote pools download the worker zipapp; empty when it is not served."""
    worker_binary_sha256: str = ""
    retire_lead_seconds: float = 60.0
    """A worker whose allocation ends within this many seconds is replaced now (the worker's
    drain timeout, 30 s, plus its 10 s margin plus the time a replacement takes to start)."""
    worker_args: tuple[str, ...] = ()
    """Extra flags for workers the scheduler starts itself (authentication, output directory)."""
    pool_secret: Callable[[str], str] = lambda _pool: ""
    """pool key → the bootstrap secret of that pool's remote workers; empty: none needed."""
    tls_required: bool = False
    """The scheduler serves mutual TLS, so remote workers need client certificates."""


@dataclasses.dataclass(frozen=True)
class PoolSummary:
    """A pool as people see it (`kubectl get workerpools`, the dashboard)."""

    key: str
    namespace: str
    name: str
    kind: str
    minimum: int
    maximum: int
    tasks_per_worker: int
    status: Mapping[str, Any]
    """The last reconcile round's: desired, starting, ready, busy, lastError ({}: none yet)."""
    removing: bool


class PoolManager:
    def __init__(
        self,
        sched: scheduler.Scheduler,
        defaults: PoolDefaults,
        factories: Mapping[str, base.AdapterFactory],
        *,
        clock: clocks.Clock = clocks.system_clock,
    ) -> None:
        self._scheduler = sched
        self._clock = clock
        self._defaults = defaults
        self._factories = dict(factories)
        self._pools: dict[str, ManagedPool] = {}
        self.exits = exits.ExitReporter(sched)
        self._statuses: dict[str, dict[str, Any]] = {}

    def summaries(self) -> list[PoolSummary]:
        return [
            PoolSummary(
                key=pool.key,
                namespace=pool.namespace,
                name=pool.name,
                kind=pool.kind,
                minimum=pool.minimum,
                maximum=pool.maximum,
                tasks_per_worker=pool.tasks_per_worker,
                status=dict(self._statuses.get(key, {})),
                removing=pool.removing,
            )
            for key, pool in self._pools.items()
        ]

    def lookup(self, key: str) -> tuple[str, str, str] | None:
        pool = self._pools.get(key)
        return (pool.namespace, pool.name, pool.uid) if pool else None

    def keys(self) -> list[str]:
        return list(self._pools)

    def upsert(self, namespace: str, name: str, uid: str, spec: Mapping[str, Any]) -> ManagedPool:
        """Creates the pool's adapter, or updates it and its limits when the spec changed."""
        key = pool_key(namespace, name)
        spec = pool_manifests.with_defaults(spec)
        try:
            parsed = pool_manifests.pool_spec(spec)
        except (KeyError, ValueError) as error:
            raise PoolSpecError(str(error)) from error
        kind = parsed.type
        factory = self._factories.get(kind)
        if factory is None:
            raise PoolSpecError(
                f"spec.type: {kind!r} pools are not available in this scheduler "
                f"(available: {', '.join(sorted(self._factories))})"
            )
        need = spec.get("resources") or {}
        capacity = models.Resources(
            cpu_cores=quantity.parse_cpu(need.get("cpu", "1")),
            memory_bytes=quantity.parse_memory(need.get("memory", "1Gi")),
            gpus=int(need.get("gpu", 0)),
            labels=dict(spec.get("labels") or {}),
        )
        secret = self._defaults.pool_secret(key)
        context = base.PoolContext(
            namespace=namespace,
            name=name,
            uid=uid,
            key=key,
            spec=spec,
            capacity=capacity,
            server_address=self._defaults.server_address,
            remote_server_address=self._defaults.remote_server_address,
            heartbeat_interval_seconds=self._defaults.heartbeat_interval_seconds
            if parsed.heartbeat_interval_seconds is None
            else parsed.heartbeat_interval_seconds,
            state_dir=self._defaults.state_dir / "pools" / namespace / name,
            walltime_seconds=parsed.walltime_seconds,
            drain_timeout_seconds=parsed.drain_timeout_seconds,
            worker_args=self._defaults.worker_args,
            bootstrap_secret=secret,
            tls_required=self._defaults.tls_required,
            worker_binary_url=self._defaults.worker_binary_url,
            worker_binary_sha256=self._defaults.worker_binary_sha256,
        )
        existing = self._pools.get(key)
        if existing is not None and existing.kind != kind:
            # Its workers belong to the old adapter: switching would leave them unmanaged.
            raise PoolSpecError(
                f"spec.type: cannot change from {existing.kind!r} to {kind!r} — delete the "
                "WorkerPool and create it again"
            )
        previous = existing.adapter if existing else None
        try:
            adapter = factory(context, previous)
        except (KeyError, ValueError) as error:
            raise PoolSpecError(str(error)) from error
        pool = ManagedPool(
            namespace=namespace,
            name=name,
            uid=uid,
            key=key,
            kind=kind,
            minimum=parsed.min_workers,
            maximum=parsed.max_workers,
            tasks_per_worker=parsed.tasks_per_worker,
            capacity=capacity,
            idle_timeout=parsed.idle_timeout_seconds,
            walltime_seconds=parsed.walltime_seconds or 0.0,
            adapter=adapter,
            last_error=existing.last_error if existing else "",
            spec=spec,
            bootstrap_secret=secret,
            removing=existing.removing if existing else False,
            lock=existing.lock if existing else asyncio.Lock(),
        )
        self._pools[key] = pool
        return pool

    async def reconcile(self, key: str) -> dict[str, Any]:
        """One round: replace exited workers, scale to demand, report. Returns the status."""
        pool = self._pools[key]
        async with pool.lock:  # shared by every record of this pool, upserts included
            # What holds now: an upsert may have replaced the record, a removal begun.
            pool = self._pools.get(key) or pool
            if pool.removing or key not in self._pools:
                status: dict[str, Any] = {
                    "desired": 0,
                    "starting": 0,
                    "ready": 0,
                    "busy": 0,
                    "lastError": pool.last_error or None,
                }
            else:
                try:
                    status = await self._reconcile(key, pool)
                except Exception as error:  # an adapter that cannot list: shown until it can
                    self._statuses[key] = {**self._statuses.get(key, {}), "lastError": str(error)}
                    raise
            if key in self._pools:
                self._statuses[key] = status
            return status

    async def _reconcile(self, key: str, pool: ManagedPool) -> dict[str, Any]:
        if self._defaults.pool_secret(key) != pool.bootstrap_secret:
            # The master secret was rotated: new workers get the pool's new secret.
            log.info("pool=%s bootstrap secret rotated; new workers get the new one", key)
            pool = self.upsert(pool.namespace, pool.name, pool.uid, pool.spec)
        adapter = pool.adapter
        # Before any worker starts: adapters that watch their workers tell of each end at once.
        self.exits.listen(adapter)
        in_pool = await asyncio.to_thread(adapter.list_workers)
        gone = [
            w
            for w in in_pool
            if w.state in (base.PoolWorkerState.EXITED, base.PoolWorkerState.FAILED)
        ]
        for worker in gone:
            if worker.state == base.PoolWorkerState.FAILED:
                pool.last_error = f"worker {worker.worker_id} failed ({_facts(worker)})"
            # Lost now, not after its missed heartbeats (nothing to do if it said TERMINATED).
            await self.exits.tell(worker.worker_id, _ended(pool.kind, worker))
        if gone:
            await asyncio.to_thread(adapter.stop_workers, [w.worker_id for w in gone])
        live = [w for w in in_pool if w not in gone and w.state != base.PoolWorkerState.STOPPING]
        registered = self._scheduler.list_workers(pool=key)
        busy = sum(1 for w in registered if w.leases)
        pending = self.demand().get(key, 0)
        desired = scaling.desired_workers(
            minimum=pool.minimum,
            maximum=pool.maximum,
            pending=pending,
            busy_workers=busy,
            tasks_per_worker=pool.tasks_per_worker,
        )
        draining = sum(1 for w in registered if w.state == models.WorkerState.DRAINING)
        walltime = pool.walltime_seconds
        lead = self._defaults.retire_lead_seconds
        if walltime:
            # A short walltime must not make every pilot "expiring" from its first heartbeat.
            lead = min(lead, walltime / 4)
        now = self._clock()
        expiring = scaling.expiring(registered, now=now, lead_seconds=lead)
        active = len(live) - draining - len(expiring)
        # Replacements may overlap the pilots they replace, but never more than one each.
        headroom = 2 * pool.maximum - len(live)
        if active < desired and headroom > 0:
            try:
                await asyncio.to_thread(adapter.start_workers, min(desired - active, headroom))
            except base.PoolError as error:  # reported on the pool; retried next round
                if str(error) != pool.last_error:  # logged once, not every round
                    log.warning("pool=%s %s", key, error)
                pool.last_error = str(error)
        elif active > desired:
            for worker_id in scaling.idle_to_release(
                registered, excess=active - desired, now=now, idle_timeout=pool.idle_timeout
            ):
                log.info("scale-down: draining idle worker_id=%s pool=%s", worker_id, key)
                await self._scheduler.request_drain_async(worker_id)
        ready = sum(1 for w in registered if w.state != models.WorkerState.DRAINING)
        starting = sum(1 for w in live if w.state == base.PoolWorkerState.STARTING)
        return {
            "desired": desired,
            "starting": starting,
            "ready": ready,
            "busy": busy,
            "lastError": pool.last_error or None,
        }

    def demand(self) -> Mapping[str, int]:
        """Queued tasks each pool should scale for (`core.demand`: a task counts once)."""
        offers = [
            demand.PoolOffer(pool.key, pool.capacity, pool.walltime_seconds or None)
            for pool in self._pools.values()
            if not pool.removing
        ]
        return demand.demand(self._scheduler.queued_tasks(), offers)

    async def remove(self, key: str) -> int:
        """Drains the pool's workers; returns how many are still registered (0: all gone)."""
        pool = self._pools.get(key)
        if pool is not None:
            pool.removing = True
        registered = [
            w
            for w in self._scheduler.list_workers(pool=key)
            if w.state != models.WorkerState.UNHEALTHY  # lost: its adapter's close ends it
        ]
        for worker in registered:
            if worker.state != models.WorkerState.DRAINING:
                await self._scheduler.request_drain_async(worker.id)
        if pool is None:
            return 0
        if registered:
            return len(registered)
        await self.close(key)
        return 0

    async def close(self, key: str) -> None:
        """Stops whatever the pool still runs (busy or not) and forgets it: the last resort."""
        pool = self._pools.get(key)
        if pool is None:
            return
        pool.removing = True
        async with pool.lock:  # after any round under way: it may be starting workers
            if self._pools.get(key) is pool:
                del self._pools[key]
                self._statuses.pop(key, None)
            await asyncio.to_thread(pool.adapter.close)


def _ended(kind: str, worker: base.PoolWorker) -> str:
    """How a worker's end reads in its tasks' attempts and the log."""
    facts = _facts(worker)
    detail = f" ({facts})" if facts else ""
    return f"its {kind} pool lists it {worker.state.value.lower()}{detail}"


def _facts(worker: base.PoolWorker) -> str:
    """What the pool knows of a worker's end: `pid 26877, killed by signal 9`."""
    facts = [worker.detail] if worker.detail else []
    code = worker.exit_code
    if code is not None:
        facts.append(f"killed by signal {-code}" if code < 0 else f"exit code {code}")
    return ", ".join(facts)
