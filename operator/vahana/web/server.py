"""The dashboard's HTTP server (aiohttp, on the scheduler's own event loop).

Pages are one static document (`assets/index.html`) and its scripts; data comes from a small
JSON API and one server-sent-events stream (`streams`). Reads never block the loop: memory is
read in place between two units of the scheduler's work, the store through the scheduler's
reads, which run on its writer thread.

Read-only unless a client token is configured: then `POST /api/tasks/{id}/cancel` with
`Authorization: Bearer <token>` cancels a task. Every response carries a Content-Security-Policy
that allows scripts from this server only, so even text that slipped into markup could not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.resources
import logging
import mimetypes
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from vahana import __version__
from vahana.core import clock as clocks
from vahana.core import models
from vahana.scheduling import pool_manager, records
from vahana.scheduling import scheduler as scheduler_module
from vahana.store import base
from vahana.store import outputs as output_store
from vahana.web import feed as feed_module
from vahana.web import streams, views

log = logging.getLogger(__name__)

TokenCheck = Callable[[str], bool]
"""The presented bearer token → whether it is the client token."""
PAGE_SIZE = 50
OUTPUT_CHUNK = 1 << 20
"""Bytes of a task's kept output read and sent at a time: bounds what one reader holds."""
MAX_PAGE_SIZE = 200
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class PortInUse(OSError):
    """The dashboard's port could not be bound: the message says why and what to do."""


def _load_assets() -> dict[str, tuple[bytes, str, str]]:
    """Every file under assets/: path → (bytes, content type, etag)."""
    found: dict[str, tuple[bytes, str, str]] = {}
    root = importlib.resources.files("vahana.web") / "assets"

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif not entry.name.startswith("."):
                body = entry.read_bytes()
                kind = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
                if entry.name.endswith(".js"):
                    kind = "text/javascript"
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                found[f"{prefix}{entry.name}"] = (body, kind, etag)

    walk(root, "")
    return found


class Dashboard:
    """`await start()` serves on host:port (0: a free one, see `port`); `await stop()`.

    Build it before the scheduler starts (`Scheduler.start()`): it counts the finished tasks
    in the store once, then follows the scheduler's changes.
    """

    def __init__(
        self,
        sched: scheduler_module.Scheduler,
        *,
        host: str,
        port: int,
        push_interval: float = 1.0,
        client_token: TokenCheck | None = None,
        clock: clocks.Clock = clocks.system_clock,
        outputs: output_store.OutputStore | None = None,
    ) -> None:
        self._scheduler = sched
        self._outputs = outputs
        self._host = host
        self._requested_port = port
        self._client_token = client_token
        self._clock = clock
        self._managers: list[pool_manager.PoolManager] = []
        self.meter = streams.CpuMeter()
        self.feed = feed_module.Feed(sched, clock=clock, finished=sched.count_tasks_by_phase())
        sched.add_listener(self.feed)
        self.hub = streams.Hub(
            self.feed,
            interval=push_interval,
            workers=self._worker_rows,
            pools=self._pool_rows,
            meter=self.meter,
        )
        self._assets = _load_assets()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def add_pools(self, manager: pool_manager.PoolManager) -> None:
        """Shows the pools this manager runs (WorkerPools, --pool-file pools)."""
        self._managers.append(manager)

    @property
    def url(self) -> str:
        host = self._host if self._host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}/"

    @property
    def cpu_seconds(self) -> float:
        """CPU time the dashboard's own handlers and updates took on the event loop."""
        return self.meter.seconds

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> int:
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/", self._index)
        app.router.add_get("/assets/{path:.+}", self._asset)
        app.router.add_get("/api/config", self._config)
        app.router.add_get("/api/overview", self._overview)
        app.router.add_get("/api/tasks", self._tasks)
        app.router.add_get("/api/tasks/{task_id}", self._task)
        app.router.add_get("/api/tasks/{task_id}/output", self._output)
        app.router.add_post("/api/tasks/{task_id}/cancel", self._cancel)
        app.router.add_post("/api/token", self._check_token)
        app.router.add_get("/api/workers", self._workers)
        app.router.add_get("/api/pools", self._pools)
        app.router.add_get("/api/events", self._events)
        # No access log: a live page makes a request per page view, not worth a log line each.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        try:
            # Bound here rather than by aiohttp, so that a port of 0 can be read back.
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            sock = socket.create_server((self._host, self._requested_port), family=family)
            await web.SockSite(self._runner, sock).start()
        except OSError as error:
            await self._runner.cleanup()
            self._runner = None
            raise PortInUse(
                f"ui.port: cannot listen on {self._host}:{self._requested_port} "
                f"({error.strerror or error}); choose another with --ui-port, or --no-ui"
            ) from error
        self.port = int(sock.getsockname()[1])
        self.hub.start()
        log.info("dashboard on %s", self.url)
        return self.port

    async def stop(self) -> None:
        await self.hub.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(ValueError):
            self._scheduler.remove_listener(self.feed)

    # -- plumbing ----------------------------------------------------------------------------
    @web.middleware
    async def _headers(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            error.headers.update(SECURITY_HEADERS)
            raise
        if not response.prepared:  # a stream set its headers before it began
            response.headers.update(SECURITY_HEADERS)
        return response

    def _json(self, data: Any, status: int = 200) -> web.Response:
        with self.meter.measure():
            return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})

    # -- pages and assets --------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._serve_asset(request, "index.html", cache="no-cache")

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        return self._serve_asset(request, request.match_info["path"], cache="no-cache")

    def _serve_asset(self, request: web.Request, path: str, *, cache: str) -> web.StreamResponse:
        found = self._assets.get(path)
        if found is None:
            raise web.HTTPNotFound(text="no such file\n")
        body, kind, etag = found
        headers = {"ETag": etag, "Cache-Control": cache}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type=kind, headers=headers)

    # -- the API -----------------------------------------------------------------------------
    async def _config(self, request: web.Request) -> web.Response:
        return self._json(
            {
                "version": __version__,
                "cancel": self._client_token is not None,
                "push_interval": self.hub.interval,
            }
        )

    async def _overview(self, request: web.Request) -> web.Response:
        with self.meter.measure():
            data = self.feed.overview()
            data["series"] = self.feed.history()
        return self._json(data)

    async def _tasks(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            phases = tuple(
                models.TaskPhase(p.strip().upper())
                for p in query.get("phase", "").split(",")
                if p.strip()
            )
            size = min(MAX_PAGE_SIZE, max(1, int(query.get("size", PAGE_SIZE))))
            page = max(0, int(query.get("page", 0)))
        except ValueError as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from error
        task_query = base.TaskQuery(
            phases=phases,
            pool=query.get("pool"),
            search=query.get("q", "").strip()[:200],
            offset=page * size,
            limit=size,
        )
        found = await self._scheduler.page_tasks_async(task_query)
        with self.meter.measure():
            rows = [views.task_summary(task) for task in found.tasks]
        return self._json({"tasks": rows, "total": found.total, "page": page, "size": size})

    async def _requested_task(self, request: web.Request) -> models.TaskRecord:
        try:
            return await self._scheduler.get_task_async(request.match_info["task_id"])
        except records.UnknownTask as error:
            raise web.HTTPNotFound(text=f"{error}\n") from error

    async def _task(self, request: web.Request) -> web.Response:
        task = await self._requested_task(request)
        attempts = await self._scheduler.list_attempts_async(task.id)
        task = self._scheduler.live_task(task.id) or task  # it may have moved meanwhile
        with self.meter.measure():
            workers = {w.id: w for w in self._scheduler.list_workers()}
            detail = views.task_detail(
                task,
                attempts,
                pending_reason=self._scheduler.pending_reason(task),
                workers=workers,
            )
        detail["output_kept"] = await self._kept(task)
        return self._json(detail)

    async def _kept(self, task: models.TaskRecord) -> dict[str, Any]:
        """How much of the latest attempt's whole output the scheduler holds."""
        if self._outputs is None or task.attempt <= 0:
            return {"bytes": 0, "truncated": False}
        store = self._outputs
        size, truncated = await asyncio.to_thread(
            lambda: (store.size(task.id, task.attempt), store.truncated(task.id, task.attempt))
        )
        return {"bytes": size, "truncated": truncated}

    async def _output(self, request: web.Request) -> web.StreamResponse:
        """The latest attempt's whole output as kept, as plain text (never rendered as HTML)."""
        task = await self._requested_task(request)
        response = web.StreamResponse(
            headers={
                **SECURITY_HEADERS,
                "Content-Type": "text/plain; charset=utf-8",
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        offset = 0
        if self._outputs is not None and task.attempt > 0:
            store = self._outputs
            while chunk := await asyncio.to_thread(
                store.read, task.id, task.attempt, offset, OUTPUT_CHUNK
            ):
                await response.write(chunk)
                offset += len(chunk)
            if task.is_final:
                await response.write(store.ending(task.id, task.attempt, offset, task.output_tail))
        elif task.is_final:
            await response.write(task.output_tail.encode())
        await response.write_eof()
        return response

    def _authorised(self, request: web.Request) -> None:
        if self._client_token is None:
            raise web.HTTPForbidden(
                text="the dashboard is read-only: the scheduler has no client token "
                "(--client-token-file) to cancel with\n"
            )
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self._client_token(token.strip()):
            raise web.HTTPUnauthorized(text="the client token is missing or wrong\n")

    async def _check_token(self, request: web.Request) -> web.Response:
        self._authorised(request)
        return self._json({"ok": True})

    async def _cancel(self, request: web.Request) -> web.Response:
        self._authorised(request)
        task_id = request.match_info["task_id"]
        try:
            cancelled, phase = await self._scheduler.cancel_async(
                task_id, "cancelled from the dashboard"
            )
        except records.UnknownTask as error:
            raise web.HTTPNotFound(text=f"{error}\n") from error
        except base.StoreUnavailable as error:
            raise web.HTTPServiceUnavailable(text=f"{error}\n") from error
        log.info("dashboard cancelled task_id=%s (was %s)", task_id, phase.value)
        return self._json({"cancelled": cancelled, "phase": phase.value})

    async def _workers(self, request: web.Request) -> web.Response:
        return self._json(self._worker_rows())

    async def _pools(self, request: web.Request) -> web.Response:
        return self._json(self._pool_rows())

    def _worker_rows(self) -> list[dict[str, Any]]:
        workers = sorted(self._scheduler.list_workers(), key=lambda w: (w.pool, w.id))
        return [views.worker_row(worker) for worker in workers]

    def _pool_rows(self) -> list[dict[str, Any]]:
        summaries = [s for manager in self._managers for s in manager.summaries()]
        return views.pool_rows(summaries, self._scheduler.list_workers())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        topics = set(request.query.get("topics", "").split(","))
        tasks = {t for t in request.query.get("tasks", "").split(",") if t}
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # proxies must not hold events back
                **SECURITY_HEADERS,
            }
        )
        await response.prepare(request)
        stream = self.hub.open(topics, tasks)
        try:
            while not self.hub.closing:
                with self.meter.measure():
                    out = stream.drain()
                    if out:
                        await response.write(out)
                stream.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stream.wake.wait(), streams.KEEPALIVE_SECONDS)
                if not stream.wake.is_set():
                    await response.write(b": keepalive\n\n")
        except (ConnectionResetError, ConnectionError):
            pass  # the page was closed
        finally:
            self.hub.close(stream)
        return response
