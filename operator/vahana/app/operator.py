"""`vahana operator`: the scheduler, its gRPC server and the kopf handlers in one event loop.

Tasks and WorkerPools are watched through kopf; the scheduler and its store are reached by
the handlers through kopf's memo, never through module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Any

import kopf

from vahana.app import adapters, distribution, security, service, stores
from vahana.app import settings as settings_module
from vahana.k8s import events as k8s_events
from vahana.k8s import kube, leader, mirrors, resources
from vahana.k8s.handlers import pools as pool_handlers
from vahana.k8s.handlers import queues as queue_handlers
from vahana.k8s.handlers import tasks as task_handlers
from vahana.pools import kubernetes as kubernetes_pools
from vahana.scheduling import pool_manager
from vahana.store import base as store_base
from vahana.store import locking

log = logging.getLogger(__name__)


def kopf_settings() -> kopf.OperatorSettings:
    configured = kopf.OperatorSettings()
    configured.persistence.finalizer = resources.FINALIZER
    configured.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="vahana.dev")
    configured.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="vahana.dev", key="last-handled-configuration"
    )
    configured.posting.level = logging.WARNING
    configured.watching.server_timeout = 300
    configured.networking.error_backoffs = [1, 2, 5, 10]
    return configured


async def run(settings: settings_module.Settings, *, stop: asyncio.Event | None = None) -> None:
    """Runs the operator until `stop` is set or a signal arrives; with leader election on, a
    standby first waits for the Lease and a leader that loses it stops (LostLeadership)."""
    api = kube.api_client()
    elector: leader.LeaderElector | None = None
    operator = settings.operator
    if operator.leader_election:
        elector = leader.LeaderElector(
            api,
            namespace=operator.lease_namespace or os.environ.get("POD_NAMESPACE", "default"),
            name=operator.lease_name,
            identity=f"{socket.gethostname()}-{os.getpid()}",
            lease_seconds=operator.lease_seconds,
            renew_seconds=max(0.5, operator.lease_seconds / 3),
        )
        await elector.acquire()
    try:
        await _lead(settings, api, elector, stop or asyncio.Event())
    finally:
        if elector is not None:
            await asyncio.to_thread(elector.release)
        api.close()  # type: ignore[no-untyped-call]


async def _lead(
    settings: settings_module.Settings,
    api: Any,
    elector: leader.LeaderElector | None,
    stop: asyncio.Event,
) -> None:
    # The Lease is renewed from here on: a PostgreSQL standby may wait for the store a while.
    lease = asyncio.create_task(elector.keep(), name="lease") if elector is not None else None
    try:
        store = await _open_store(settings, lease)
        process = service.SchedulerProcess(settings, local_workers=0, store=store)
        await process.start()
    except BaseException:
        if lease is not None:
            lease.cancel()
            with contextlib.suppress(asyncio.CancelledError, leader.LostLeadership):
                await lease
        raise
    operator = settings.operator
    server_address = operator.worker_server_address or process.address
    memo = kopf.Memo()
    memo.scheduler = process.scheduler
    memo.api = api
    memo.secrets_dir = settings.state_dir / "secrets"
    memo.events = k8s_events.EventRecorder(api)
    memo.queues = {}
    memo.task_mirror = mirrors.TaskStatusMirror(
        process.scheduler, api, flush_seconds=operator.status_flush_seconds, recorder=memo.events
    )
    served = await asyncio.to_thread(_serve_worker_zipapp, settings)
    # Pilots of slurm and baremetal pools run outside the cluster: they reach the scheduler,
    # and download the worker, at an address of their own when one is set.
    remote_address = settings.pools.worker_server_address or server_address
    memo.pools = pool_manager.PoolManager(
        process.scheduler,
        pool_manager.PoolDefaults(
            server_address=server_address,
            remote_server_address=settings.pools.worker_server_address,
            heartbeat_interval_seconds=settings.scheduler.heartbeat_interval_seconds,
            state_dir=settings.state_dir,
            worker_binary_url=served.url(remote_address.rsplit(":", 1)[0]) if served else "",
            worker_binary_sha256=served.sha256 if served else "",
            worker_args=(
                f"--output-dir={settings.state_dir / 'outputs'}",
                *security.local_worker_args(settings),
            ),
            pool_secret=security.pool_secrets(settings),
            tls_required=settings.tls.enabled,
        ),
        process.pool_factories({**adapters.by_type(), "kubernetes": kubernetes_pools.factory(api)}),
    )
    if process.dashboard is not None:
        process.dashboard.add_pools(memo.pools)
    memo.worker_mirror = mirrors.WorkerMirror(
        process.scheduler,
        api,
        pool_of=memo.pools.lookup,
        default_namespace=operator.worker_namespace,
        metrics_seconds=operator.worker_metrics_seconds,
    )
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: object) -> kopf.ConnectionInfo | None:
        # A private registry has none of kopf's default handlers: log in as the client does.
        return kopf.login_via_client(**kwargs)  # type: ignore[arg-type]

    task_handlers.register(registry)
    pool_handlers.register(registry, resync_seconds=operator.pool_resync_seconds)
    queue_handlers.register(registry)
    namespaces = [n.strip() for n in operator.namespaces.split(",") if n.strip()]
    background = [
        asyncio.create_task(memo.task_mirror.run(), name="task-status-mirror"),
        asyncio.create_task(memo.worker_mirror.run(), name="worker-mirror"),
    ]
    log.info(
        "operator running grpc=%s workers_reach=%s namespaces=%s dashboard=%s",
        process.address,
        server_address,
        ",".join(namespaces) or "(all)",
        process.dashboard.url if process.dashboard is not None else "off",
    )
    kopf_run = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=kopf_settings(),
            memo=memo,
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            stop_flag=stop,
        ),
        name="kopf",
    )
    background.append(asyncio.create_task(process.until_store_lost(), name="store-lock"))
    watched = [kopf_run, background[-1]]
    if lease is not None:
        background.append(lease)
        watched.append(lease)
    try:
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for finished in done:
            if finished is not kopf_run:
                stop.set()  # leadership lost: stop handling before the next leader starts
                await kopf_run
            finished.result()
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(
                asyncio.CancelledError, leader.LostLeadership, locking.StoreLocked
            ):
                await task
        if served is not None:
            served.stop()
        await memo.pools.exits.close()  # no more worker exits told: the store is about to close
        await process.stop()


async def _open_store(
    settings: settings_module.Settings, lease: asyncio.Task[None] | None
) -> store_base.Store:
    """The store, once no other scheduler holds it (a PostgreSQL standby waits, renewing the
    Lease meanwhile); raises `leader.LostLeadership` if the Lease is lost while waiting."""
    opening = asyncio.create_task(
        stores.open_when_free(
            settings.store_url, state_dir=settings.state_dir, standby=settings.store.standby
        ),
        name="open-store",
    )
    if lease is None:
        return await opening
    await asyncio.wait([opening, lease], return_when=asyncio.FIRST_COMPLETED)
    if opening.done():
        return opening.result()
    opening.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await opening
    lease.result()  # raises LostLeadership
    raise leader.LostLeadership("lease renewal ended while waiting for the store")


def _serve_worker_zipapp(
    settings: settings_module.Settings,
) -> distribution.WorkerDistribution | None:
    """Serves the worker zipapp that slurm and baremetal pools download; None if there is none
    (those pools then say so on their status)."""
    try:
        configured = settings.pools.worker_pyz
        pyz = (
            Path(configured).expanduser().resolve()
            if configured
            else distribution.build_worker_pyz(settings.state_dir / "dist" / "worker.pyz")
        )
        served = distribution.WorkerDistribution(
            pyz, host=settings.server.host, port=settings.pools.distribution_port
        )
        served.start()
    except (OSError, RuntimeError) as error:
        log.warning("no worker zipapp to serve, slurm and baremetal pools cannot start: %s", error)
        return None
    return served
