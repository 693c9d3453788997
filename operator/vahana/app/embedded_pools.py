"""WorkerPools of `--pool-file` files run by the embedded scheduler, without a cluster.

A `PoolManager` with the local, slurm and baremetal adapter factories, one reconcile round per
pool every `pools.resync_seconds` (an asyncio task), and the worker zipapp served over HTTP when
a pool needs it. Stopping drains the pools' workers while the scheduler still serves, then
closes the adapters (scancel, ssh hang-up) for whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vahana.app import adapters, security
from vahana.app import settings as settings_module
from vahana.pools import base
from vahana.scheduling import pool_manager, scheduler

if TYPE_CHECKING:
    from vahana.app import distribution
    from vahana.manifests import pools as pool_manifests

log = logging.getLogger(__name__)

REMOTE_TYPES = ("slurm", "baremetal")
"""Pool types whose workers download the zipapp."""


class EmbeddedPools:
    def __init__(
        self,
        sched: scheduler.Scheduler,
        settings: settings_module.Settings,
        manifests: Sequence[pool_manifests.PoolManifest],
        *,
        server_address: str,
        wrap_factories: Callable[
            [Mapping[str, base.AdapterFactory]], Mapping[str, base.AdapterFactory]
        ] = dict,
    ) -> None:
        self._scheduler = sched
        self._wrap_factories = wrap_factories
        """Wraps the adapter factories (metrics count the adapters' calls)."""
        self._settings = settings
        self._manifests = list(manifests)
        self._server_address = settings.pools.worker_server_address or server_address
        self.manager: pool_manager.PoolManager | None = None
        self.distribution: distribution.WorkerDistribution | None = None
        self.statuses: dict[str, dict[str, Any]] = {}
        """The last reconcile status of each pool (desired, ready, busy, lastError, …)."""
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        url = sha = ""
        if any(m.spec.get("type") in REMOTE_TYPES for m in self._manifests):
            self.distribution = await asyncio.to_thread(self._serve_worker)
            url = self.distribution.url(self._server_address.rsplit(":", 1)[0])
            sha = self.distribution.sha256
        self.manager = pool_manager.PoolManager(
            self._scheduler,
            pool_manager.PoolDefaults(
                server_address=self._server_address,
                heartbeat_interval_seconds=self._settings.scheduler.heartbeat_interval_seconds,
                state_dir=self._settings.state_dir,
                worker_binary_url=url,
                worker_binary_sha256=sha,
                worker_args=(
                    f"--output-dir={self._settings.state_dir / 'outputs'}",
                    *security.local_worker_args(self._settings),
                ),
                pool_secret=security.pool_secrets(self._settings),
                tls_required=self._settings.tls.enabled,
            ),
            self._wrap_factories(adapters.by_type()),
        )
        for manifest in self._manifests:
            key = pool_manager.pool_key(manifest.namespace, manifest.name)
            try:
                self.manager.upsert(manifest.namespace, manifest.name, key, manifest.spec)
            except pool_manager.PoolSpecError as error:
                log.error("pool=%s invalid: %s", key, error)
                self.statuses[key] = {"lastError": str(error), "ready": 0, "desired": 0}
        self._loop = asyncio.create_task(self._reconcile_forever(), name="embedded-pools")

    def _serve_worker(self) -> distribution.WorkerDistribution:
        from vahana.app import distribution  # http.server: only for pools that download

        configured = self._settings.pools.worker_pyz
        if configured:
            pyz = Path(configured).expanduser().resolve()
        else:
            pyz = distribution.build_worker_pyz(self._settings.state_dir / "dist" / "worker.pyz")
        served = distribution.WorkerDistribution(
            pyz, host=self._settings.server.host, port=self._settings.pools.distribution_port
        )
        served.start()
        return served

    async def _reconcile_forever(self) -> None:
        while True:
            await self.reconcile_all()
            await asyncio.sleep(self._settings.pools.resync_seconds)

    async def reconcile_all(self) -> None:
        assert self.manager is not None
        keys = self.manager.keys()
        for key in keys:
            before = self.statuses.get(key, {}).get("lastError")
            what = "lastError"
            try:
                status = await self.manager.reconcile(key)
            except Exception as error:  # an adapter that cannot list (squeue down, …)
                status = {**self.statuses.get(key, {}), "lastError": str(error)}
                what = "reconcile failed"
            # Said when it changes, not every round: a pool that cannot reach its cluster is
            # tried again every few seconds.
            if status.get("lastError") != before:
                log.warning("pool=%s %s: %s", key, what, status.get("lastError"))
            self.statuses[key] = status

    async def remove(self, key: str, timeout: float = 60.0) -> None:
        """Drains the pool's workers, then closes its adapter (scancel / hang up the rest)."""
        assert self.manager is not None
        deadline = time.monotonic() + timeout
        while await self.manager.remove(key) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if (
            self.manager.lookup(key) is not None
        ):  # workers that never left: close the adapter anyway
            await self.manager.close(key)

    async def stop(self, timeout: float = 60.0) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self.manager is not None:
            keys = self.manager.keys()
            await asyncio.gather(*(self.remove(key, timeout) for key in keys))
            await self.manager.exits.close()
        if self.distribution is not None:
            self.distribution.stop()
