"""The dashboard's HTTP API on a real Scheduler (in-memory SQLite, its writer thread started):
paging, a task's detail, the event stream, and cancel behind the client token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from builders import make_task
from vahana.scheduling import scheduler
from vahana.store import sqlite
from vahana.web import server

TOKEN = "let-me-cancel"
Run = Callable[[Callable[[server.Dashboard, aiohttp.ClientSession], Awaitable[None]]], None]


def serving(*, token: str | None) -> Run:
    def run(body: Callable[[server.Dashboard, aiohttp.ClientSession], Awaitable[None]]) -> None:
        async def main() -> None:
            sched = scheduler.Scheduler(sqlite.SqliteStore(":memory:"))
            sched.submit(
                [make_task(f"job-{i}").pool("a" if i % 2 else "").submission() for i in range(120)]
            )
            dashboard = server.Dashboard(
                sched,
                host="127.0.0.1",
                port=0,
                push_interval=0.05,
                client_token=(lambda presented: presented == token) if token else None,
            )
            sched.start()
            await dashboard.start()
            try:
                async with aiohttp.ClientSession(base_url=dashboard.url) as session:
                    await body(dashboard, session)
            finally:
                await dashboard.stop()
                await sched.close()

        asyncio.run(main())

    return run


def test_tasks_are_paged_newest_first_and_filtered() -> None:
    async def body(dashboard: server.Dashboard, session: aiohttp.ClientSession) -> None:
        async with session.get("/api/tasks", params={"page": "1", "size": "50"}) as response:
            page = await response.json()
        assert page["total"] == 120 and len(page["tasks"]) == 50
        assert page["tasks"][0]["name"] == "job-69"
        async with session.get("/api/tasks", params={"pool": "a", "q": "JOB-1"}) as response:
            found = await response.json()
        assert {t["name"] for t in found["tasks"]} == {
            f"job-{i}" for i in range(1, 120) if i % 2 and str(i).startswith("1")
        }
        async with session.get("/api/tasks", params={"phase": "bogus"}) as response:
            assert response.status == 400
        async with session.get("/api/tasks/nothing-like-it") as response:
            assert response.status == 404
        async with session.get("/api/tasks/job-3") as response:
            detail = await response.json()
        assert detail["name"] == "job-3" and detail["attempts"] == []
        assert detail["pending_reason"]  # no worker: it says why it waits

    serving(token=None)(body)


def test_the_event_stream_starts_with_history_and_follows_watched_tasks() -> None:
    async def body(dashboard: server.Dashboard, session: aiohttp.ClientSession) -> None:
        async with session.get("/api/tasks/job-5") as response:
            watched = (await response.json())["id"]
        params = {"topics": "overview,workers,nonsense", "tasks": watched}
        async with session.get("/api/events", params=params) as response:
            assert response.headers["Content-Type"] == "text/event-stream"
            kinds: list[str] = []
            tasks: list[dict[str, object]] = []
            cancelled = False
            async for line in response.content:
                text = line.decode().strip()
                if text.startswith("event: "):
                    kinds.append(text.removeprefix("event: "))
                elif text.startswith("data: ") and kinds[-1] == "tasks":
                    tasks.extend(json.loads(text.removeprefix("data: ")))
                    break
                if not cancelled and {"history", "overview", "workers"} <= set(kinds):
                    await dashboard._scheduler.cancel_async(watched)
                    cancelled = True
        assert kinds[0] == "history" and "nonsense" not in kinds
        assert [(t["id"], t["phase"]) for t in tasks] == [(watched, "CANCELLED")]

    serving(token=None)(body)


def test_read_only_without_a_client_token() -> None:
    async def body(dashboard: server.Dashboard, session: aiohttp.ClientSession) -> None:
        async with session.get("/api/config") as response:
            assert (await response.json())["cancel"] is False
        headers = {"Authorization": "Bearer anything"}
        async with session.post("/api/tasks/job-1/cancel", headers=headers) as response:
            assert response.status == 403
            assert "read-only" in await response.text()
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]

    serving(token=None)(body)


@pytest.mark.parametrize(("presented", "status"), [(None, 401), ("wrong", 401), (TOKEN, 200)])
def test_cancel_needs_the_client_token(presented: str | None, status: int) -> None:
    async def body(dashboard: server.Dashboard, session: aiohttp.ClientSession) -> None:
        headers = {"Authorization": f"Bearer {presented}"} if presented else {}
        async with session.post("/api/tasks/job-1/cancel", headers=headers) as response:
            assert response.status == status
            if status == 200:
                assert await response.json() == {"cancelled": True, "phase": "CANCELLED"}
        async with session.get("/api/tasks/job-1") as response:
            phase = (await response.json())["phase"]
        assert phase == ("CANCELLED" if status == 200 else "PENDING")

    serving(token=TOKEN)(body)


def test_assets_are_served_from_the_package_and_nothing_else() -> None:
    async def body(dashboard: server.Dashboard, session: aiohttp.ClientSession) -> None:
        async with session.get("/") as response:
            assert "text/html" in response.headers["Content-Type"]
            etag = response.headers["ETag"]
        async with session.get("/", headers={"If-None-Match": etag}) as response:
            assert response.status == 304
        async with session.get("/assets/js/app.js") as response:
            assert response.headers["Content-Type"].startswith("text/javascript")
        for path in ("/assets/../server.py", "/assets/%2e%2e/server.py", "/elsewhere"):
            async with session.get(path) as response:
                assert response.status == 404, path

    serving(token=None)(body)
