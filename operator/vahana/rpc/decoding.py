"""Registers a servicer so that a malformed request gets INVALID_ARGUMENT, never INTERNAL.

grpc's generated registration decodes requests before any handler runs, and answers a decode
failure with INTERNAL — a server error for what is the client's. Here the handler receives the
raw bytes and decodes them itself, so the answer names the method and the expected message.
A handler (or a conversion it calls) raising `checks.InvalidArgument` is answered the same way;
one raising `base.StoreUnavailable` (the store cannot write: the call changed nothing) is
answered UNAVAILABLE with the store's reason, which clients take as "try again".
Every method of the service descriptor (the proto, the one source) is registered. A `guard`
(rpc/auth.py) sees every decoded request before its handler and may refuse the call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import descriptor, message, message_factory
from google.protobuf.message import DecodeError

from vahana.rpc import checks
from vahana.store import base

Handler = Callable[[Any, Any], Any]
Guard = Callable[[str, str, Any, Any], Awaitable[None]]
"""(service full name, method name, decoded request, context); aborts the call to refuse it."""


def add_service(
    server: grpc.aio.Server,
    servicer: object,
    service: descriptor.ServiceDescriptor,
    guard: Guard | None = None,
) -> None:
    handlers = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        implementation = getattr(servicer, method.name)
        if guard is not None:
            implementation = _guarded(
                implementation, guard, service.full_name, method, method.server_streaming
            )
        if method.client_streaming and method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                _bidirectional(implementation, request_class, method.full_name),
                response_serializer=response_class.SerializeToString,
            )
        elif method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(implementation, request_class, method.full_name),
                response_serializer=response_class.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(implementation, request_class, method.full_name),
                response_serializer=response_class.SerializeToString,
            )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )


def _guarded(
    implementation: Any,
    guard: Guard,
    service: str,
    method: descriptor.MethodDescriptor,
    streaming: bool,
) -> Any:
    name = method.name
    if method.client_streaming:

        async def bidirectional(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            async def guarded() -> AsyncIterator[Any]:
                async for request in requests:  # each request, as if it came in a call
                    await guard(service, name, request, context)
                    yield request

            async for item in implementation(guarded(), context):
                yield item

        return bidirectional
    if streaming:

        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            await guard(service, name, request, context)
            async for item in implementation(request, context):
                yield item

        return stream

    async def unary(request: Any, context: Any) -> Any:
        await guard(service, name, request, context)
        return await implementation(request, context)

    return unary


async def _decode(raw: bytes, request_class: type[message.Message], name: str, context: Any) -> Any:
    try:
        return request_class.FromString(raw)
    except (DecodeError, RuntimeWarning, ValueError) as error:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{name}: the request is not a valid {request_class.DESCRIPTOR.full_name} ({error})",
        )


def _unary(
    implementation: Callable[[Any, Any], Awaitable[Any]],
    request_class: type[message.Message],
    name: str,
) -> Callable[[bytes, Any], Awaitable[Any]]:
    async def handle(raw: bytes, context: Any) -> Any:
        request = await _decode(raw, request_class, name, context)
        try:
            return await implementation(request, context)
        except _REFUSALS as error:
            await _refuse(error, name, context)

    return handle


def _streaming(
    implementation: Callable[[Any, Any], AsyncIterator[Any]],
    request_class: type[message.Message],
    name: str,
) -> Callable[[bytes, Any], AsyncIterator[Any]]:
    async def handle(raw: bytes, context: Any) -> AsyncIterator[Any]:
        request = await _decode(raw, request_class, name, context)
        async for item in _answered(implementation(request, context), name, context):
            yield item

    return handle


def _bidirectional(
    implementation: Callable[[AsyncIterator[Any], Any], AsyncIterator[Any]],
    request_class: type[message.Message],
    name: str,
) -> Callable[[AsyncIterator[bytes], Any], AsyncIterator[Any]]:
    """A stream of requests, each decoded as it comes: a malformed one ends the stream with
    INVALID_ARGUMENT, as it would end its call."""

    async def handle(raw_requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[Any]:
        async def decoded() -> AsyncIterator[Any]:
            async for raw in raw_requests:
                yield await _decode(raw, request_class, name, context)

        async for item in _answered(implementation(decoded(), context), name, context):
            yield item

    return handle


async def _answered(items: AsyncIterator[Any], name: str, context: Any) -> AsyncIterator[Any]:
    """A streaming handler's answers; what it refuses is answered as a unary call's would be."""
    try:
        async for item in items:
            yield item
    except _REFUSALS as error:
        await _refuse(error, name, context)


_REFUSALS = (checks.InvalidArgument, base.StoreUnavailable)
"""What a handler raises to refuse a request, rather than fail."""


async def _refuse(error: Exception, name: str, context: Any) -> None:
    """Ends the call: INVALID_ARGUMENT naming the method for a bad request, UNAVAILABLE (try
    again) for a store that cannot write."""
    if isinstance(error, checks.InvalidArgument):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {error}")
    await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
