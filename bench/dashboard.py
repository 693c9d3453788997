"""The web dashboard's cost to the scheduler, and how fast its task list answers at scale.

dashboard_cpu: what the web dashboard costs the scheduler, with one page open.

The end-to-end workload of `end_to_end_throughput` (N `true` tasks on a `SchedulerProcess` with
a `LocalPool` of 4 real workers, SQLite in a temp dir), run alternately without the dashboard
and with it serving one open overview page: Debian's headless Chromium when it is installed
(a child process: its own CPU is not the scheduler's), else a client in a thread of this
process that loads what the page loads and reads its event stream (its CPU then counts
against the scheduler: an overestimate).

The value is the dashboard's CPU as a share of the scheduler process's CPU over the runs with
the page open, where the dashboard's CPU is
- what its handlers and its ticker took on the event loop, measured inside them with the
  thread's CPU clock (`Dashboard.cpu_seconds`), plus
- its task listener: the calls it got during the run × its cost per call, timed afterwards by
  replaying the task changes of the run through a fresh feed (timing each call inside the
  scheduler would cost more than the call).
`detail` also gives the plain difference in scheduler CPU per task between the runs with and
without it, which is the same question asked more bluntly and is within the runs' noise.

dashboard_pages: the task list's answers (`GET /api/tasks`, what the page fetches for each view
of the list) over 100,000 queued tasks in 3 pools and 5 priorities: the first, next and last
page, a pool filter, the tasks of no pool, a name search and an empty phase filter, each timed
from the request to the whole answer read, best of 3. The value is the slowest view, next to
the page's budget of 1 s and, as the reference of the same run, `GET /api/config` (the
dashboard's HTTP round trip with nothing to look up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from vahana.app import service
from vahana.app import settings as settings_module
from vahana.core import models
from vahana.web import feed as feed_module

from bench.common import Result, cpu_self, log
from bench.scenarios import FINAL_TIMEOUT, FinalCounter, submissions, wait_for_workers

WORKERS = 4
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextlib.contextmanager
def open_page(url: str) -> Iterator[str]:
    """The overview open in a browser (or a client that acts as its page); yields which."""
    if CHROMIUM:
        profile = tempfile.mkdtemp(prefix="vahana-bench-chromium-")
        browser = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its renderer and helpers go with it
        )
        try:
            yield "chromium"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(browser.pid, signal.SIGTERM)
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(browser.pid, signal.SIGKILL)
                browser.wait()
            shutil.rmtree(profile, ignore_errors=True)
        return
    stop = threading.Event()

    def read() -> None:
        for path in ("", "assets/app.css", "assets/js/app.js", "api/config", "api/overview"):
            urllib.request.urlopen(url + path, timeout=10).read()
        with urllib.request.urlopen(url + "api/events?topics=overview", timeout=60) as events:
            while not stop.is_set() and events.readline():
                pass

    reader = threading.Thread(target=read, daemon=True, name="bench-page")
    reader.start()
    try:
        yield "sse-client"
    finally:
        stop.set()  # it ends at its next event (≤ 1 s) or with the server


def settings_for(
    state_dir: str, *, dashboard: bool, workers: int = WORKERS
) -> settings_module.Settings:
    return settings_module.load(
        {
            "server.port": 0,
            "metrics.port": 0,  # as in `vahana run`; a port held elsewhere cannot fail the run
            "store.state_dir": state_dir,
            "local_pool.workers": workers,
            "local_pool.tasks_per_worker": 1,
            "ui.enabled": dashboard,
            "ui.port": 0,
        },
        environ={},
    )


async def _run(count: int, *, dashboard: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vahana-bench-") as tmp:
        process = service.SchedulerProcess(
            settings_for(tmp, dashboard=dashboard), local_workers=WORKERS
        )
        try:
            await process.start()
            await wait_for_workers(process.scheduler, WORKERS)
            with contextlib.ExitStack() as stack:
                page = ""
                ui = process.dashboard
                if ui is not None:
                    page = stack.enter_context(open_page(ui.url))
                    deadline = time.monotonic() + 30
                    while ui.hub.open_streams < 1:  # the page has loaded and listens
                        if time.monotonic() > deadline:
                            raise TimeoutError("the dashboard page did not open its stream")
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.0)  # its first load is over: the run is measured
                return await _measure(process, count, page)
        finally:
            await process.stop()


async def _measure(process: service.SchedulerProcess, count: int, page: str) -> dict[str, Any]:
    ui = process.dashboard
    seen: list[models.TaskRecord] = []
    counter = FinalCounter(count)
    process.scheduler.add_listener(counter)
    process.scheduler.add_listener(seen.append)  # in both variants: the replay's input
    meter_before = ui.cpu_seconds if ui else 0.0
    calls_before = ui.feed.changes if ui else 0
    cpu_before = cpu_self()
    started = time.perf_counter()
    process.scheduler.submit(submissions(count))
    await asyncio.wait_for(counter.done.wait(), FINAL_TIMEOUT)
    elapsed = time.perf_counter() - started
    cpu = cpu_self() - cpu_before
    return {
        "seconds": elapsed,
        "scheduler_cpu_s": cpu,
        "dashboard_meter_s": (ui.cpu_seconds - meter_before) if ui else 0.0,
        "listener_calls": (ui.feed.changes - calls_before) if ui else 0,
        "page": page,
        "seen": seen,
    }


def listener_cost(changes: list[models.TaskRecord], repeat: int = 20) -> float:
    """Seconds per call of the dashboard's task listener, replaying a run's changes."""
    best = float("inf")
    for _ in range(3):
        feed = feed_module.Feed(None, finished={})  # type: ignore[arg-type]  # not read
        started = time.perf_counter()
        for _ in range(repeat):
            for task in changes:
                feed(task)
        best = min(best, (time.perf_counter() - started) / (repeat * len(changes)))
    return best


def dashboard_cpu(full: bool) -> list[Result]:
    count = 10_000 if full else 2_000
    pairs = 3 if full else 2
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for pair in range(pairs):
        for served in (False, True):
            log(f"dashboard: {count} tasks, {'with' if served else 'without'} it ({pair + 1})")
            runs[served].append(asyncio.run(_run(count, dashboard=served)))
    per_call = listener_cost(runs[True][-1]["seen"])
    with_ui, without = runs[True], runs[False]
    scheduler_cpu = sum(r["scheduler_cpu_s"] for r in with_ui)
    meter = sum(r["dashboard_meter_s"] for r in with_ui)
    calls = sum(r["listener_calls"] for r in with_ui)
    dashboard_seconds = meter + calls * per_call

    def us_per_task(rows: list[dict[str, Any]]) -> float:
        return statistics.median(r["scheduler_cpu_s"] / count * 1e6 for r in rows)

    return [
        Result(
            "dashboard_cpu_share",
            dashboard_seconds / scheduler_cpu * 100,
            "% of scheduler CPU",
            detail={
                "tasks": count,
                "runs_each": pairs,
                "page": with_ui[0]["page"],
                "dashboard_cpu_s": dashboard_seconds,
                "handlers_and_updates_cpu_s": meter,
                "listener_calls": calls,
                "listener_us_per_call": per_call * 1e6,
                "scheduler_cpu_s": scheduler_cpu,
                "measured_with": "thread CPU clock inside the dashboard's handlers and ticker "
                "+ listener calls × replayed cost per call, over getrusage(RUSAGE_SELF)",
            },
            comparison={
                "scheduler_cpu_us_per_task_without": us_per_task(without),
                "scheduler_cpu_us_per_task_with": us_per_task(with_ui),
                "difference_percent": (us_per_task(with_ui) / us_per_task(without) - 1) * 100,
                "tasks_per_s_without": statistics.median(count / r["seconds"] for r in without),
                "tasks_per_s_with": statistics.median(count / r["seconds"] for r in with_ui),
                "runs_us_per_task_without": [r["scheduler_cpu_s"] / count * 1e6 for r in without],
                "runs_us_per_task_with": [r["scheduler_cpu_s"] / count * 1e6 for r in with_ui],
                "load_average_after": list(os.getloadavg()),
            },
        )
    ]


PAGE_TASKS = 100_000
PAGE_POOLS = ("alpha", "beta", "")
PAGE_BUDGET_S = 1.0
PAGE_VIEWS = {
    "first page": "api/tasks",
    "next page": "api/tasks?page=1",
    "last page": f"api/tasks?page={PAGE_TASKS // 50 - 1}",
    "pool filter": "api/tasks?phase=PENDING&pool=alpha",
    "no pool": "api/tasks?pool=&page=3",  # the page asks for "(none)" this way
    "name search": "api/tasks?q=sample-9999",
    "finished filter": "api/tasks?phase=COMPLETED",
}


def _fetch_seconds(url: str, repeat: int = 3) -> tuple[float, bytes]:
    """The best of `repeat` requests: seconds to the whole answer, and the answer."""
    best, body = float("inf"), b""
    for _ in range(repeat):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as answer:
            body = answer.read()
        best = min(best, time.perf_counter() - started)
    return best, body


async def _pages() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vahana-bench-") as tmp:
        # No worker: every task stays queued.
        settings = settings_for(tmp, dashboard=True, workers=0)
        process = service.SchedulerProcess(settings, local_workers=0)
        try:
            await process.start()
            assert process.dashboard is not None
            for start in range(0, PAGE_TASKS, 2_000):
                process.scheduler.submit(
                    [
                        models.Submission(
                            models.TaskSpec(name=f"sample-{i}", command="true", priority=i % 5),
                            pool=PAGE_POOLS[i % len(PAGE_POOLS)],
                        )
                        for i in range(start, start + 2_000)
                    ]
                )
                await process.scheduler.settled()
            url = process.dashboard.url
            # The client runs in a thread: the dashboard answers on this process's loop.
            floor, _ = await asyncio.to_thread(_fetch_seconds, url + "api/config")
            views: dict[str, float] = {}
            totals: dict[str, int] = {}
            for view, path in PAGE_VIEWS.items():
                views[view], body = await asyncio.to_thread(_fetch_seconds, url + path)
                totals[view] = json.loads(body)["total"]
            return {"views": views, "totals": totals, "config_s": floor}
        finally:
            await process.stop()


def dashboard_pages(full: bool) -> list[Result]:
    log(f"dashboard pages: the task list over {PAGE_TASKS:,} queued tasks")
    run = asyncio.run(_pages())
    views: dict[str, float] = run["views"]
    slowest = max(views, key=views.__getitem__)
    return [
        Result(
            "dashboard_task_list_slowest",
            views[slowest] * 1000,
            "ms",
            detail={
                "queued_tasks": PAGE_TASKS,
                "slowest_view": slowest,
                "views_ms": {view: seconds * 1000 for view, seconds in views.items()},
                "views_total_tasks": run["totals"],
                "measured_with": "urllib in a thread of the scheduler's process, best of 3, "
                "request → whole answer read",
            },
            comparison={
                "budget_ms": PAGE_BUDGET_S * 1000,
                "api_config_ms": run["config_s"] * 1000,
            },
        )
    ]


SCENARIOS = {"dashboard_cpu": dashboard_cpu, "dashboard_pages": dashboard_pages}
