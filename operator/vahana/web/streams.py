"""Live updates to open pages: server-sent events, pushed from the feed at a bounded rate.

One ticker runs while at least one page is open: every `interval` seconds it builds each
payload some page wants (overview, workers, pools) once, encodes it once, and hands it to the
streams whose last copy differs; changed watched tasks go to the streams watching them. Each
stream writes from its own handler, so a slow browser holds up only itself, and keeps only the
newest payload of each kind (a page that falls behind skips to the present).

Nothing here reads the store: pages that need it (the task list, a task's attempts) ask for it
over HTTP when an event tells them that what they show has changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from vahana.web import feed as feed_module
from vahana.web import series, views

log = logging.getLogger(__name__)

TOPICS = ("overview", "workers", "pools")
MAX_WATCHED = 200
"""Tasks one page may watch (a page of the task list, or one task)."""
KEEPALIVE_SECONDS = 15.0
"""A comment line this often finds closed connections and keeps proxies from timing out."""


def encode(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class CpuMeter:
    """CPU time of this thread spent inside `measure()` blocks (the dashboard's own work on
    the event loop), so its cost can be told apart from the scheduler's."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        started = time.thread_time()
        try:
            yield
        finally:
            self.seconds += time.thread_time() - started


class Stream:
    def __init__(self, topics: set[str], tasks: set[str]) -> None:
        self.topics = topics
        self.tasks = tasks
        self.outbox: dict[str, bytes] = {}
        """kind → the newest encoded event of that kind not yet written."""
        self.sent: dict[str, bytes] = {}
        self.task_updates: dict[str, dict[str, Any]] = {}
        """Watched tasks changed since the last write: id → its row."""
        self.wake = asyncio.Event()

    def offer(self, kind: str, payload: bytes) -> None:
        if self.sent.get(kind) != payload:
            self.outbox[kind] = payload
            self.wake.set()

    def offer_tasks(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.task_updates[row["id"]] = row
        self.wake.set()

    def drain(self) -> bytes:
        out = b"".join(self.outbox.values())
        self.sent.update(self.outbox)
        self.outbox = {}
        if self.task_updates:
            out += encode("tasks", list(self.task_updates.values()))
            self.task_updates = {}
        return out


class Hub:
    """The open streams and the ticker that feeds them."""

    def __init__(
        self,
        feed: feed_module.Feed,
        *,
        interval: float,
        workers: Callable[[], list[dict[str, Any]]],
        pools: Callable[[], list[dict[str, Any]]],
        meter: CpuMeter,
    ) -> None:
        self._feed = feed
        self._interval = interval
        self._builders: dict[str, Callable[[], Any]] = {
            "overview": self._overview,
            "history": feed.history,
            "workers": workers,
            "pools": pools,
        }
        self._meter = meter
        self._streams: set[Stream] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._series_sent_at = 0.0
        self._tasks_changed = False
        self.closing = False
        feed.on_change = self._task_changed

    @property
    def interval(self) -> float:
        """Seconds between two updates of a page."""
        return self._interval

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def start(self) -> None:
        self._sampler = asyncio.create_task(self._sample_forever(), name="dashboard-sampler")

    async def stop(self) -> None:
        self.closing = True
        for stream in self._streams:
            stream.wake.set()
        for task in (self._ticker, self._sampler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def open(self, topics: set[str], tasks: set[str]) -> Stream:
        """A new stream, its first events already in its outbox (the history for charts)."""
        watched = set(sorted(tasks)[:MAX_WATCHED])
        stream = Stream({t for t in topics if t in TOPICS}, watched)
        self._streams.add(stream)
        self._feed.watch(watched)
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick_forever(), name="dashboard-ticker")
        with self._meter.measure():
            built: dict[str, bytes] = {}
            if "overview" in stream.topics:
                stream.offer("history", self._build("history", built))
            for kind in sorted(stream.topics):
                stream.offer(kind, self._build(kind, built))
        return stream

    def close(self, stream: Stream) -> None:
        if stream in self._streams:
            self._streams.discard(stream)
            self._feed.unwatch(stream.tasks)

    def _task_changed(self) -> None:
        self._tasks_changed = True

    async def _sample_forever(self) -> None:
        # The queue-depth chart needs samples whether a page is open or not.
        while True:
            self._feed.sample_queue()
            await asyncio.sleep(self._interval)

    async def _tick_forever(self) -> None:
        while self._streams and not self.closing:
            await asyncio.sleep(self._interval)
            try:
                with self._meter.measure():
                    self._tick()
            except Exception:  # a broken payload must not end the live pages
                log.exception("dashboard update failed")

    def _tick(self) -> None:
        built: dict[str, bytes] = {}
        changed = self._feed.take_changed() if self._tasks_changed else {}
        self._tasks_changed = False
        for stream in self._streams:
            for kind in stream.topics:
                stream.offer(kind, self._build(kind, built))
            if changed and stream.tasks:
                rows = [views.task_summary(changed[i]) for i in stream.tasks if i in changed]
                if rows:
                    stream.offer_tasks(rows)

    def _build(self, kind: str, built: dict[str, bytes]) -> bytes:
        """Each kind is built and encoded at most once per tick, whichever stream asks."""
        if kind not in built:
            built[kind] = encode(kind, self._builders[kind]())
        return built[kind]

    def _overview(self) -> dict[str, Any]:
        data = self._feed.overview()
        # The buckets since the last tick (and the one before, still filling then).
        since = self._series_sent_at - 2 * series.BUCKET_SECONDS
        data["series"] = self._feed.series_since(since)
        self._series_sent_at = self._feed.now()
        return data
