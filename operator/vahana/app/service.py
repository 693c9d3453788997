"""A running scheduler process: store, scheduler, gRPC server and (optionally) a local pool."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vahana.app import keeper, security, stores
from vahana.app import settings as settings_module
from vahana.core import fairshare
from vahana.pools import base as pool_base
from vahana.pools import local
from vahana.rpc import server as server_module
from vahana.scheduling import exits
from vahana.scheduling import scheduler as scheduler_module
from vahana.store import base as store_base
from vahana.store import locking, outputs

if TYPE_CHECKING:  # loaded when asked for: --pool-file, metrics.port
    from vahana.app import embedded_pools
    from vahana.manifests import pools as pool_manifests
    from vahana.observability import endpoint, instrumentation

log = logging.getLogger(__name__)


class SchedulerProcess:
    """Starts in order (store → scheduler → server → workers), stops in reverse.

    Workers are stopped while the server still serves, so that they can hand in their last
    results and say TERMINATED. The store is held exclusively (app/stores.py): opening it
    raises `locking.StoreLocked` when another scheduler holds it, and `store_lost` is set if
    another takes it over later (the process should then stop: it can no longer write).
    """

    def __init__(
        self,
        settings: settings_module.Settings,
        *,
        local_workers: int | None = None,
        pools: Sequence[pool_manifests.PoolManifest] = (),
        store: store_base.Store | None = None,
    ) -> None:
        """`store`: one opened already (a standby's, `stores.open_when_free`); None: open the
        settings' store now."""
        self.settings = settings
        self._local_workers = settings.local_workers if local_workers is None else local_workers
        self.store = (
            store
            if store is not None
            else stores.open_store(settings.store_url, state_dir=settings.state_dir)
        )
        self.store_lost = asyncio.Event()
        self.lost_store_error: locking.StoreLocked | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        stores.on_lost(self.store, self._lose_store)
        self.scheduler = scheduler_module.Scheduler(self.store, settings=settings.scheduler)
        if settings.queues.file:
            self.scheduler.set_queues(read_queue_file(settings.queues.file))
        self.scheduler.recover()
        address = f"{settings.server.host}:{settings.server.port}"
        self.instrumentation: instrumentation.Instrumentation | None = None
        if settings.metrics.port:
            from vahana.observability import instrumentation  # prometheus_client

            self.instrumentation = instrumentation.Instrumentation(self.scheduler)
        self.certificates = security.certificates(settings)
        self.outputs = outputs.OutputStore(
            settings.state_dir / "task-output", max_bytes=settings.store.output_max_bytes
        )
        self.server = server_module.SchedulerServer(
            self.scheduler,
            address=address,
            interceptors=[self.instrumentation.interceptor] if self.instrumentation else [],
            credentials=self.certificates.credentials() if self.certificates else None,
            guard=security.guard(settings, self.scheduler),
            output_store=self.outputs,
        )
        self.metrics_endpoint: endpoint.MetricsEndpoint | None = None
        # Built before the scheduler starts: it counts the store's finished tasks once.
        self.dashboard = (
            _dashboard_module().Dashboard(
                self.scheduler,
                host=settings.ui.host or settings.server.host,
                port=settings.ui.port,
                push_interval=settings.ui.push_interval_seconds,
                client_token=security.client_token_check(settings),
                outputs=self.outputs,
            )
            if settings.ui.enabled
            else None
        )
        self.pool: local.LocalPool | None = None
        self.keeper: keeper.LocalWorkerKeeper | None = None
        """Replaces the local pool's workers that end while the scheduler runs."""
        self.exits = exits.ExitReporter(self.scheduler)
        """Tells the scheduler at once of local workers whose process ended."""
        self.pools: embedded_pools.EmbeddedPools | None = None
        """The WorkerPools of --pool-file files, when any were given."""
        self._pool_manifests = list(pools)
        self._stopped = False

    @property
    def output_dir(self) -> Path:
        """Where local workers collect task outputs."""
        configured = self.settings.local_pool.output_dir
        return (
            Path(configured).expanduser().resolve()
            if configured
            else self.settings.state_dir / "outputs"
        )

    @property
    def address(self) -> str:
        host = self.settings.server.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"{host}:{self.server.port}"

    def pool_factories(
        self, factories: Mapping[str, pool_base.AdapterFactory]
    ) -> dict[str, pool_base.AdapterFactory]:
        """The pool adapter factories to give a PoolManager: instrumented when metrics are on."""
        if self.instrumentation is None:
            return dict(factories)
        return self.instrumentation.instrument_pools(factories)

    def _lose_store(self, error: locking.StoreLocked) -> None:
        # Called by the store from whatever thread found the lock gone.
        self.lost_store_error = error
        if self._loop is None:
            self.store_lost.set()
        else:
            self._loop.call_soon_threadsafe(self.store_lost.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.instrumentation is not None:
            self.metrics_endpoint = self.instrumentation.endpoint(
                host=self.settings.metrics.host or self.settings.server.host,
                port=self.settings.metrics.port,
            )
            await self.metrics_endpoint.start()
        self.scheduler.start()  # the store's I/O moves to its writer thread
        await self.server.start()
        if self._local_workers > 0:
            state = self.settings.state_dir
            self.pool = local.LocalPool(
                local.LocalPoolConfig(
                    server_address=self.address,
                    working_dir=Path(state) / "workers",
                    log_dir=Path(state) / "logs",
                    tasks_per_worker=self.settings.local_pool.tasks_per_worker,
                    heartbeat_interval_seconds=self.settings.scheduler.heartbeat_interval_seconds,
                    task_timeout_seconds=self.settings.local_pool.task_timeout_seconds,
                    extra_args=(
                        f"--output-dir={self.output_dir}",
                        *security.local_worker_args(self.settings),
                    ),
                )
            )
            self.exits.listen(self.pool)
            workers = self.scheduler.list_workers
            self.keeper = keeper.LocalWorkerKeeper(
                self.pool,
                registered=lambda worker_id: any(w.id == worker_id for w in workers()),
            )
            self.keeper.start(self._local_workers)
        if self._pool_manifests:
            from vahana.app import embedded_pools  # --pool-file only

            self.pools = embedded_pools.EmbeddedPools(
                self.scheduler,
                self.settings,
                self._pool_manifests,
                server_address=self.address,
                wrap_factories=self.pool_factories,
            )
            await self.pools.start()
            if self.dashboard is not None and self.pools.manager is not None:
                self.dashboard.add_pools(self.pools.manager)
        if self.dashboard is not None:
            await self.dashboard.start()

    async def until_store_lost(self) -> None:
        """Raises the store's `locking.StoreLocked` once another scheduler has taken it."""
        await self.store_lost.wait()
        assert self.lost_store_error is not None
        raise self.lost_store_error

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.dashboard is not None:  # its live pages end first: nothing more to show
            await self.dashboard.stop()
        if self.pools is not None:
            await self.pools.stop()
        if self.keeper is not None:
            self.keeper.stop()
        if self.pool is not None:
            await asyncio.to_thread(self.pool.close)
        await self.exits.close()  # what the pools' workers' ends told is committed, then no more
        await self.server.stop()
        await self.scheduler.close()  # commits what was decided, then the store can close
        if self.metrics_endpoint is not None:
            await self.metrics_endpoint.stop()
        self.store.close()
        log.info("stopped pid=%d", os.getpid())


def _dashboard_module() -> types.ModuleType:
    """vahana.web.server, imported when a dashboard is asked for: aiohttp takes ~0.2 s to load."""
    return importlib.import_module("vahana.web.server")


def read_queue_file(path: str) -> list[fairshare.QueueConfig]:
    """The Queues of `queues.file`; raises `queue_manifests.ManifestError` naming each problem."""
    from vahana.manifests import queues as queue_manifests  # jsonschema: only when asked

    text = Path(path).read_text(encoding="utf-8")
    return queue_manifests.parse_queue_documents(text, source=path)
