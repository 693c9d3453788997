"""A grpc.aio server interceptor counting RPCs by service, method and status code, with latency.

Names follow go-grpc-prometheus (`grpc_server_started_total`, `grpc_server_handled_total`,
`grpc_server_handling_seconds`) under the `vahana_` prefix. Only methods the server has a
handler for are counted, so a client cannot grow the label set with made-up method names.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from vahana.observability import metrics as metrics_module

_CODES_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def split_method(full_method: str) -> tuple[str, str]:
    """`/vahana.worker.WorkerService/SendHeartbeat` → service and method names."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


def code_name(code: object) -> str:
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int) and code in _CODES_BY_VALUE:
        return str(_CODES_BY_VALUE[code].name)
    return "OK" if code is None else str(code)


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        metrics: metrics_module.SchedulerMetrics,
        *,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._metrics = metrics
        self._timer = timer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, method = split_method(handler_call_details.method)
        if handler.unary_unary:
            kind, behavior = "unary", handler.unary_unary
            factory = grpc.unary_unary_rpc_method_handler
        elif handler.unary_stream:
            kind, behavior = "server_stream", handler.unary_stream
            factory = grpc.unary_stream_rpc_method_handler
        elif handler.stream_unary:
            kind, behavior = "client_stream", handler.stream_unary
            factory = grpc.stream_unary_rpc_method_handler
        elif handler.stream_stream:
            kind, behavior = "bidi_stream", handler.stream_stream
            factory = grpc.stream_stream_rpc_method_handler
        else:  # pragma: no cover - every handler has one behaviour
            return handler
        labels = (service, method, kind)
        if handler.request_streaming:
            behavior = self._count_received(behavior, labels)
        wrapped = (
            self._wrap_stream(behavior, labels)
            if inspect.isasyncgenfunction(behavior)
            else self._wrap_call(behavior, labels)
        )
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap_call(
        self, behavior: Callable[..., Any], labels: tuple[str, str, str]
    ) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = self._start(labels)
            try:
                result = behavior(request, context)
                if inspect.isawaitable(result):
                    result = await result
            except BaseException as error:
                self._finish(labels, started, _code_of_error(error, context))
                raise
            self._finish(labels, started, code_name(context.code()))
            return result

        return call

    def _wrap_stream(
        self, behavior: Callable[..., AsyncIterator[Any]], labels: tuple[str, str, str]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = self._start(labels)
            try:
                async for item in behavior(request, context):
                    yield item
            except BaseException as error:
                self._finish(labels, started, _code_of_error(error, context))
                raise
            self._finish(labels, started, code_name(context.code()))

        return stream

    def _count_received(
        self, behavior: Callable[..., Any], labels: tuple[str, str, str]
    ) -> Callable[..., Any]:
        """The same behaviour, counting each message of its request stream as it is read."""
        received = self._metrics.grpc_received.labels(*labels)

        async def counted(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for request in requests:
                received.inc()
                yield request

        if inspect.isasyncgenfunction(behavior):

            async def stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
                async for item in behavior(counted(requests), context):
                    yield item

            return stream

        async def call(requests: AsyncIterator[Any], context: Any) -> Any:
            result = behavior(counted(requests), context)
            return await result if inspect.isawaitable(result) else result

        return call

    def _start(self, labels: tuple[str, str, str]) -> float:
        self._metrics.grpc_started.labels(*labels).inc()
        return self._timer()

    def _finish(self, labels: tuple[str, str, str], started: float, code: str) -> None:
        self._metrics.grpc_handled.labels(*labels, code).inc()
        self._metrics.grpc_seconds.labels(*labels).observe(max(0.0, self._timer() - started))


def _code_of_error(error: BaseException, context: grpc.aio.ServicerContext) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    if isinstance(error, grpc.aio.AbortError):
        return code_name(context.code())
    return "UNKNOWN"
