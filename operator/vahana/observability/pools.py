"""Pool adapters wrapped to count their calls: operations, errors and time, by pool type.

The adapters themselves stay unaware of metrics: `instrument_factories` wraps each factory so
that the adapter it builds comes back inside an `InstrumentedPool`. Calls run in worker threads
(`asyncio.to_thread`); prometheus-client's metrics are thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from vahana.observability import metrics as metrics_module
from vahana.pools import base

Result = TypeVar("Result")


class InstrumentedPool:
    """Forwards to the adapter (`inner`), counting start, stop, list, status and close."""

    def __init__(
        self,
        inner: base.WorkerPool,
        *,
        pool_type: str,
        metrics: metrics_module.SchedulerMetrics,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._pool_type = pool_type
        self._metrics = metrics
        self._timer = timer

    def start_workers(self, count: int) -> list[str]:
        return self._call("start", lambda: self.inner.start_workers(count))

    def stop_workers(self, worker_ids: Sequence[str]) -> None:
        self._call("stop", lambda: self.inner.stop_workers(worker_ids))

    def list_workers(self) -> list[base.PoolWorker]:
        return self._call("list", self.inner.list_workers)

    def status(self) -> base.PoolStatus:
        return self._call("status", self.inner.status)

    def close(self, timeout: float = 30.0) -> None:
        self._call("close", lambda: self.inner.close(timeout))

    @property
    def exit_listener(self) -> base.ExitListener | None:
        return getattr(self.inner, "exit_listener", None)

    @exit_listener.setter
    def exit_listener(self, listener: base.ExitListener | None) -> None:
        # The adapter watches its workers' exits, not this wrapper (`base.WatchesExits`).
        if hasattr(self.inner, "exit_listener"):
            self.inner.exit_listener = listener

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _call(self, operation: str, action: Callable[[], Result]) -> Result:
        labels = (self._pool_type, operation)
        self._metrics.pool_operations.labels(*labels).inc()
        started = self._timer()
        try:
            return action()
        except Exception:
            self._metrics.pool_errors.labels(*labels).inc()
            raise
        finally:
            self._metrics.pool_seconds.labels(*labels).observe(max(0.0, self._timer() - started))


def instrument_factories(
    factories: Mapping[str, base.AdapterFactory], metrics: metrics_module.SchedulerMetrics
) -> dict[str, base.AdapterFactory]:
    """The same factories, each building an `InstrumentedPool` labelled with its pool type."""

    def wrap(pool_type: str, factory: base.AdapterFactory) -> base.AdapterFactory:
        def build(context: base.PoolContext, previous: base.WorkerPool | None) -> base.WorkerPool:
            if isinstance(previous, InstrumentedPool):
                previous = previous.inner
            adapter = factory(context, previous)
            return InstrumentedPool(adapter, pool_type=pool_type, metrics=metrics)

        return build

    return {pool_type: wrap(pool_type, factory) for pool_type, factory in factories.items()}
