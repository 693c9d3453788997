"""Random and malformed protobuf requests to every method of the real server.

Each gets OK or a clear client error (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION) —
never INTERNAL or UNKNOWN — and the server stays up.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vahana.proto import task_service_pb2, worker_pb2

from tests.integration import harness

pytestmark = pytest.mark.integration
CLIENT_ERRORS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}
METHODS = [
    method
    for service in (
        worker_pb2.DESCRIPTOR.services_by_name["WorkerService"],
        task_service_pb2.DESCRIPTOR.services_by_name["TaskService"],
    )
    for method in service.methods
]


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    with tempfile.TemporaryDirectory(prefix="vh-fuzz-") as state:
        scheduler = harness.SchedulerProcess(state_dir=Path(state)).start()
        with grpc.insecure_channel(scheduler.address) as connection:
            yield connection
            reply = health_pb2_grpc.HealthStub(connection).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, "the server went down"
        scheduler.stop()


def _call(
    channel: grpc.Channel, method: descriptor.MethodDescriptor, payload: bytes
) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.client_streaming:
            call = channel.stream_stream(path)(iter([payload]), timeout=2)
            for _ in call:
                break
            call.cancel()
        elif method.server_streaming:
            call = channel.unary_stream(path)(payload, timeout=2)
            for _ in call:
                break
            call.cancel()
        else:
            channel.unary_unary(path)(payload, timeout=2)
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
            return grpc.StatusCode.OK  # a long poll or watch that had nothing to say
        assert error.code() in CLIENT_ERRORS, f"{path}: {error.code().name}: {error.details()}"
        return error.code()
    return grpc.StatusCode.OK


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=200))
def test_random_bytes_get_a_client_error_never_a_server_error(
    channel: grpc.Channel, method: descriptor.MethodDescriptor, payload: bytes
) -> None:
    _call(channel, method, payload)


def _fields(message_class: type) -> st.SearchStrategy[bytes]:
    """Well-formed messages with hostile values: huge and negative numbers, odd strings,
    unknown enum values, out-of-range timestamps."""
    scalars = {
        descriptor.FieldDescriptor.TYPE_STRING: st.text(max_size=300),
        descriptor.FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
        descriptor.FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
        descriptor.FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
        descriptor.FieldDescriptor.TYPE_BOOL: st.booleans(),
        descriptor.FieldDescriptor.TYPE_ENUM: st.integers(-5, 50),
    }

    def build(draw: st.DrawFn, cls: type, depth: int) -> object:
        instance = cls()
        for field in cls.DESCRIPTOR.fields:
            if not draw(st.booleans()):
                continue
            if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
                if depth > 2 or field.message_type.GetOptions().map_entry:
                    continue
                child_class = message_factory.GetMessageClass(field.message_type)
                child = build(draw, child_class, depth + 1)
                if field.is_repeated:
                    getattr(instance, field.name).add().CopyFrom(child)
                else:
                    getattr(instance, field.name).CopyFrom(child)
                continue
            strategy = scalars.get(field.type)
            if strategy is None:
                continue
            value = draw(strategy)
            try:
                if field.is_repeated:
                    getattr(instance, field.name).append(value)
                else:
                    setattr(instance, field.name, value)
            except (ValueError, TypeError):
                pass
        return instance

    return st.composite(lambda draw: build(draw, message_class, 0).SerializeToString())()


@FUZZ
@given(data=st.data())
def test_hostile_field_values_get_a_client_error_never_a_server_error(
    channel: grpc.Channel, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(METHODS))
    payload = data.draw(_fields(message_factory.GetMessageClass(method.input_type)))
    _call(channel, method, payload)
