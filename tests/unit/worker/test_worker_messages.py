"""Translations between protocol messages and the executor's types."""

from google.protobuf import duration_pb2
from vahana_worker import executor, messages, settings
from vahana_worker.proto import worker_pb2 as pb


def test_spec_takes_the_task_timeout_or_the_default() -> None:
    task = pb.Task(
        id="t",
        command="true",
        attempt=3,
        environment={"A": "1"},
        input_files=[pb.FileTransfer(source="/x", destination="in/x")],
        output_files=[pb.FileTransfer(source="out", destination="/res/")],
    )
    spec = messages.spec_from_task(task, default_timeout=60.0)
    assert (spec.task_id, spec.attempt, spec.timeout) == ("t", 3, 60.0)
    assert dict(spec.environment) == {"A": "1"}
    assert spec.inputs == (("/x", "in/x"),)
    assert spec.outputs == (("out", "/res/"),)
    task.timeout.CopyFrom(duration_pb2.Duration(seconds=5, nanos=500_000_000))
    assert messages.spec_from_task(task, default_timeout=60.0).timeout == 5.5


def test_final_update_echoes_the_attempt_and_maps_the_outcome() -> None:
    result = executor.Result(
        executor.Outcome.TIMED_OUT, 143, "timed out", "tail", executor.FailureKind.TASK_ERROR
    )
    update = messages.final_update(worker_id="w", task_id="t", attempt=4, result=result, now=12.5)
    assert update.attempt == 4
    assert update.status == pb.TIMED_OUT
    assert update.failure_kind == pb.TASK_ERROR
    assert (update.exit_code, update.output_tail, update.timestamp.seconds) == (143, "tail", 12)
    assert messages.is_final(update)
    running = messages.running_update(worker_id="w", task_id="t", attempt=4, now=1.0)
    assert running.status == pb.RUNNING and not messages.is_final(running)


def test_register_request_carries_capabilities_and_leases() -> None:
    config = settings.load(
        {"worker_id": "w", "max_tasks": "3", "label": None},
        {
            "VAHANA_WORKER_LABELS": "zone=a",
            "VAHANA_WORKER_CPU_CORES": "2.5",
            "VAHANA_WORKER_MEMORY": "1Gi",
            "VAHANA_WORKER_ALLOCATION_ENDS_AT": "100",
            "VAHANA_WORKER_POOL": "p",
        },
    )
    request = messages.register_request(config, [("t1", 2)])
    caps = request.capabilities
    assert (caps.cpu_cores, caps.memory_bytes, caps.max_concurrent_tasks) == (2.5, 2**30, 3)
    assert dict(caps.labels) == {"zone": "a"}
    assert caps.allocation_ends_at.seconds == 100
    assert [(lease.task_id, lease.attempt) for lease in request.running_tasks] == [("t1", 2)]
    assert request.pool == "p" and request.pid > 0 and request.version
