"""The gRPC surface as a client sees it: reflection, health, ListWorkers, fencing, bad input."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.waiting import wait_until

SEED_METHODS = {
    "RegisterWorker",
    "PollForTask",
    "UpdateTaskStatus",
    "SendHeartbeat",
    "UpdateWorkerStatus",
    "BatchUpdateTaskStatus",
    "ListWorkers",
}
ADDED_METHODS = {"AppendTaskOutput", "StreamTaskStatus"}
"""Methods Vahana added to the seed's service (added, never renamed)."""


def _reflect(
    channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))


def test_reflection_lists_the_worker_service_with_the_seed_s_methods_and_health(
    client: harness.Client,
) -> None:
    listed = _reflect(client.channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {service.name for service in listed.list_services_response.service}
    assert {"worker.WorkerService", "grpc.health.v1.Health", "vahana.TaskService"} <= names

    found = _reflect(
        client.channel,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="worker.WorkerService"),
    )
    from google.protobuf import descriptor_pb2

    methods: set[str] = set()
    for blob in found.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
        for service in proto.service:
            if service.name == "WorkerService":
                methods = {method.name for method in service.method}
    assert methods == SEED_METHODS | ADDED_METHODS


def test_list_workers_returns_registered_workers_with_capabilities(
    client: harness.Client, start_worker: WorkerFactory
) -> None:
    start_worker("cap-1", max_tasks=3, extra=("--cpu-cores=2", "--label=zone=a"))
    workers = wait_until(lambda: client.list_workers(), timeout=15, message="a registered worker")
    [worker] = workers
    assert worker.worker_id == "cap-1"
    assert worker.status == pb.AVAILABLE
    assert worker.capabilities.max_concurrent_tasks == 3
    assert worker.capabilities.cpu_cores == 2
    assert worker.capabilities.labels["zone"] == "a"
    assert worker.capabilities.memory_bytes > 0

    # Heartbeats carry real figures from the worker's host. (Registration alone sets
    # last_heartbeat; the metrics' timestamp comes with the first heartbeat.)
    beat = wait_until(
        lambda: [w for w in client.list_workers() if w.metrics.HasField("timestamp")],
        timeout=15,
        message="a heartbeat",
    )[0]
    assert 0 < beat.metrics.memory_usage <= 100
    assert 0 <= beat.metrics.cpu_usage <= 100
    assert beat.metrics.memory_used_bytes > 0


def test_a_stale_attempt_is_refused_and_does_not_change_the_task(
    client: harness.Client, start_worker: WorkerFactory
) -> None:
    [task_id] = client.submit(harness.submission("sleep 30", "long"))
    start_worker("fence-1")
    wait_until(lambda: client.status(task_id) == pb.RUNNING, timeout=15, message="task running")
    before = client.get(task_id)

    stale = pb.UpdateTaskStatusRequest(
        task_id=task_id,
        worker_id="fence-1",
        attempt=before.attempt + 1,
        status=pb.COMPLETED,
        exit_code=0,
    )
    with pytest.raises(grpc.RpcError) as refused:
        client.workers.UpdateTaskStatus(stale, timeout=5)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "stale attempt" in refused.value.details()

    other_worker = pb.UpdateTaskStatusRequest(
        task_id=task_id,
        worker_id="intruder",
        attempt=before.attempt,
        status=pb.FAILED,
        exit_code=1,
    )
    with pytest.raises(grpc.RpcError) as refused_again:
        client.workers.UpdateTaskStatus(other_worker, timeout=5)
    assert refused_again.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    after = client.get(task_id)
    assert (after.status, after.attempt, after.worker_id) == (pb.RUNNING, before.attempt, "fence-1")


@pytest.mark.parametrize(
    ("call", "request_message", "field"),
    [
        ("RegisterWorker", pb.RegisterWorkerRequest(), "worker_id"),
        ("PollForTask", pb.PollForTaskRequest(worker_id="w", max_tasks=-1), "max_tasks"),
        (
            "UpdateTaskStatus",
            pb.UpdateTaskStatusRequest(task_id="t", worker_id="w", attempt=1, status=pb.ASSIGNED),
            "status",
        ),
        (
            "UpdateTaskStatus",
            pb.UpdateTaskStatusRequest(task_id="t", worker_id="w", attempt=0, status=pb.RUNNING),
            "attempt",
        ),
        (
            "UpdateTaskStatus",
            pb.UpdateTaskStatusRequest(
                task_id="t", worker_id="w", attempt=1, status=pb.COMPLETED, output_log="/tmp/x"
            ),
            "output_log",
        ),
        ("SendHeartbeat", pb.HeartbeatRequest(worker_id="bad id with spaces"), "worker_id"),
        ("UpdateWorkerStatus", pb.UpdateWorkerStatusRequest(worker_id="w"), "status"),
    ],
)
def test_malformed_requests_get_invalid_argument_naming_the_field(
    client: harness.Client, call: str, request_message: object, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        getattr(client.workers, call)(request_message, timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in refused.value.details()


def test_an_unknown_worker_polling_is_told_to_register(client: harness.Client) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        client.workers.PollForTask(
            pb.PollForTaskRequest(worker_id="nobody", max_tasks=1), timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
