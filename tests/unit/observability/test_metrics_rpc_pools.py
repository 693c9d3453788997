"""The gRPC interceptor counts RPCs by method and code; pool adapters' calls and errors count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry
from vahana.observability import interceptor, metrics, pools
from vahana.pools import base


class FakeContext:
    def __init__(self) -> None:
        self._code: grpc.StatusCode | None = None

    def code(self) -> grpc.StatusCode | None:
        return self._code

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        raise grpc.aio.AbortError(details)


class Details:
    def __init__(self, method: str) -> None:
        self.method = method


async def _intercepted(
    registry_metrics: metrics.SchedulerMetrics, method: str, handler: Any
) -> Any:
    async def continuation(_details: Any) -> Any:
        return handler

    return await interceptor.MetricsInterceptor(registry_metrics).intercept_service(
        continuation, Details(method)
    )


def handled(m: metrics.SchedulerMetrics, method: str, code: str, kind: str = "unary") -> float:
    found = m.registry.get_sample_value(
        "vahana_grpc_server_handled_total",
        {
            "grpc_service": "vahana.TaskService",
            "grpc_method": method,
            "grpc_type": kind,
            "grpc_code": code,
        },
    )
    return 0.0 if found is None else found


def test_unary_calls_are_counted_with_their_status_code() -> None:
    m = metrics.SchedulerMetrics(CollectorRegistry())

    async def get(request: str, context: FakeContext) -> str:
        if request == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such task")
        return request.upper()

    async def scenario() -> None:
        handler = await _intercepted(
            m, "/vahana.TaskService/GetTask", grpc.unary_unary_rpc_method_handler(get)
        )
        assert await handler.unary_unary("t-1", FakeContext()) == "T-1"
        with pytest.raises(grpc.aio.AbortError):
            await handler.unary_unary("missing", FakeContext())

    asyncio.run(scenario())
    assert handled(m, "GetTask", "OK") == 1
    assert handled(m, "GetTask", "NOT_FOUND") == 1
    count = m.registry.get_sample_value(
        "vahana_grpc_server_handling_seconds_count",
        {"grpc_service": "vahana.TaskService", "grpc_method": "GetTask", "grpc_type": "unary"},
    )
    assert count == 2


def test_server_streams_are_counted_when_they_end_and_crashes_are_unknown() -> None:
    m = metrics.SchedulerMetrics(CollectorRegistry())

    async def watch(request: int, context: FakeContext) -> AsyncIterator[int]:
        for n in range(request):
            yield n
        if request == 0:
            raise RuntimeError("broken")

    async def scenario() -> None:
        handler = await _intercepted(
            m, "/vahana.TaskService/WatchTasks", grpc.unary_stream_rpc_method_handler(watch)
        )
        assert [n async for n in handler.unary_stream(3, FakeContext())] == [0, 1, 2]
        with pytest.raises(RuntimeError):
            async for _ in handler.unary_stream(0, FakeContext()):
                pass

    asyncio.run(scenario())
    assert handled(m, "WatchTasks", "OK", "server_stream") == 1
    assert handled(m, "WatchTasks", "UNKNOWN", "server_stream") == 1


def test_a_bidirectional_stream_counts_each_message_it_receives_and_once_when_it_ends() -> None:
    m = metrics.SchedulerMetrics(CollectorRegistry())

    async def echo(requests: AsyncIterator[str], context: FakeContext) -> AsyncIterator[str]:
        async for request in requests:
            yield request.upper()

    async def three() -> AsyncIterator[str]:
        for text in ("a", "b", "c"):
            yield text

    async def scenario() -> None:
        handler = await _intercepted(
            m, "/vahana.TaskService/Echo", grpc.stream_stream_rpc_method_handler(echo)
        )
        assert [n async for n in handler.stream_stream(three(), FakeContext())] == ["A", "B", "C"]

    asyncio.run(scenario())
    labels = {
        "grpc_service": "vahana.TaskService",
        "grpc_method": "Echo",
        "grpc_type": "bidi_stream",
    }
    assert m.registry.get_sample_value("vahana_grpc_server_msg_received_total", labels) == 3
    assert handled(m, "Echo", "OK", "bidi_stream") == 1


def test_methods_without_a_handler_are_not_counted() -> None:
    m = metrics.SchedulerMetrics(CollectorRegistry())
    assert asyncio.run(_intercepted(m, "/made.Up/Method", None)) is None
    assert m.registry.get_sample_value("vahana_grpc_server_started_total", {}) is None
    assert b"made.Up" not in m.exposition()


class FakeAdapter:
    name = "p"

    def __init__(self) -> None:
        self.started = 0

    def start_workers(self, count: int) -> list[str]:
        if count > 2:
            raise base.PoolError("sbatch: quota exceeded")
        self.started += count
        return [f"w{n}" for n in range(count)]

    def stop_workers(self, worker_ids: Any) -> None: ...

    def list_workers(self) -> list[base.PoolWorker]:
        return []

    def status(self) -> base.PoolStatus:
        return base.PoolStatus("p", 0, 0, 0)

    def close(self, timeout: float = 30.0) -> None: ...


def test_pool_adapter_calls_and_errors_are_counted_by_pool_type_and_operation() -> None:
    m = metrics.SchedulerMetrics(CollectorRegistry())
    built: list[tuple[Any, Any]] = []

    def factory(context: Any, previous: Any) -> Any:
        built.append((context, previous))
        return previous or FakeAdapter()

    wrapped = pools.instrument_factories({"slurm": factory}, m)["slurm"]
    adapter = wrapped(None, None)  # type: ignore[arg-type]
    assert adapter.name == "p"
    adapter.start_workers(2)
    with pytest.raises(base.PoolError):
        adapter.start_workers(5)
    adapter.list_workers()
    # A spec change hands the factory its own adapter back, not the wrapper.
    again = wrapped(None, adapter)  # type: ignore[arg-type]
    assert built[1][1] is adapter.inner  # type: ignore[attr-defined]
    assert again.inner.started == 2  # type: ignore[attr-defined]

    def sample(name: str, operation: str) -> float | None:
        return m.registry.get_sample_value(name, {"pool_type": "slurm", "operation": operation})

    assert sample("vahana_pool_operations_total", "start") == 2
    assert sample("vahana_pool_operation_errors_total", "start") == 1
    assert sample("vahana_pool_operations_total", "list") == 1
    assert sample("vahana_pool_operation_errors_total", "list") is None
    assert sample("vahana_pool_operation_duration_seconds_count", "start") == 2
