"""The last hour in time buckets: tasks finished, dispatch latency and queue depth.

Filled from the scheduler's task listener, so every addition is O(1): a counter, or a latency
sample kept in a bounded ring of its bucket. Percentiles are worked out when a bucket is read
(once for a closed bucket: it is cached), never on the scheduler's hot path.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

BUCKET_SECONDS = 5.0
BUCKETS = 720
"""One hour of buckets."""
SAMPLES_KEPT = 1024
"""Latency samples kept per bucket (the newest, when there are more)."""


@dataclasses.dataclass(slots=True)
class Bucket:
    completed: int = 0
    failed: int = 0
    """Ended in any other final phase (failed, timed out, cancelled)."""
    latencies: list[float] = dataclasses.field(default_factory=list)
    seen: int = 0
    """Latency samples added, kept or not."""
    queued: int | None = None
    """Queue depth when last sampled during the bucket."""
    stats: tuple[float | None, float | None] | None = None
    """(p50, p95) in ms, cached once the bucket is closed."""

    def add_latency(self, seconds: float) -> None:
        if len(self.latencies) < SAMPLES_KEPT:
            self.latencies.append(seconds)
        else:  # a ring: the newest SAMPLES_KEPT of the bucket
            self.latencies[self.seen % SAMPLES_KEPT] = seconds
        self.seen += 1

    def percentiles(self) -> tuple[float | None, float | None]:
        if self.stats is not None:
            return self.stats
        if not self.latencies:
            return (None, None)
        ordered = sorted(self.latencies)
        return (_rank(ordered, 0.5) * 1000, _rank(ordered, 0.95) * 1000)


def _rank(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile: an observed sample."""
    index = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


class Series:
    def __init__(self) -> None:
        self._buckets: dict[int, Bucket] = {}
        self._newest = 0

    def _bucket(self, stamp: float) -> Bucket:
        index = int(stamp // BUCKET_SECONDS)
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = Bucket()
            if index > self._newest:
                self._close_before(index)
                self._newest = index
        return bucket

    def add_final(self, stamp: float, *, completed: bool) -> None:
        bucket = self._bucket(stamp)
        if completed:
            bucket.completed += 1
        else:
            bucket.failed += 1

    def add_latency(self, stamp: float, seconds: float) -> None:
        self._bucket(stamp).add_latency(max(0.0, seconds))

    def sample_queue(self, stamp: float, depth: int) -> None:
        self._bucket(stamp).queued = depth

    def _close_before(self, index: int) -> None:
        """Caches the percentiles of the buckets now closed; forgets those past the hour."""
        for old in [i for i in self._buckets if i <= index - BUCKETS]:
            del self._buckets[old]
        for i, bucket in self._buckets.items():
            if i < index and bucket.stats is None:
                bucket.stats = bucket.percentiles()
                bucket.latencies = []

    def window(self, now: float, *, since: float | None = None) -> dict[str, Any]:
        """Columns of the buckets from `since` (default: an hour ago) up to `now`'s bucket.

        Times are the buckets' starts (seconds since the epoch); rates are per second; a
        bucket without latency samples has null percentiles; queue depth is carried forward
        from the last bucket that sampled it.
        """
        last = int(now // BUCKET_SECONDS)
        first = last - BUCKETS + 1
        if since is not None:
            first = max(first, int(since // BUCKET_SECONDS))
        columns: dict[str, list[Any]] = {
            "time": [],
            "completed_per_s": [],
            "failed_per_s": [],
            "latency_p50_ms": [],
            "latency_p95_ms": [],
            "queued": [],
        }
        depth: int | None = None
        for index in range(first, last + 1):
            bucket = self._buckets.get(index)
            if bucket is not None and bucket.queued is not None:
                depth = bucket.queued
            p50, p95 = bucket.percentiles() if bucket is not None else (None, None)
            columns["time"].append(index * BUCKET_SECONDS)
            columns["completed_per_s"].append(
                round(bucket.completed / BUCKET_SECONDS, 3) if bucket else 0
            )
            columns["failed_per_s"].append(
                round(bucket.failed / BUCKET_SECONDS, 3) if bucket else 0
            )
            columns["latency_p50_ms"].append(None if p50 is None else round(p50, 3))
            columns["latency_p95_ms"].append(None if p95 is None else round(p95, 3))
            columns["queued"].append(depth)
        return {"step": BUCKET_SECONDS, **columns}
