"""Status reports over the worker's StreamTaskStatus stream: what the scheduler counts, and the
worker's side of it (an answer that does not come, a new token, a scheduler without it)."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from vahana.proto import worker_pb2 as scheduler_pb
from vahana_worker import client, settings
from vahana_worker.proto import worker_pb2 as pb
from vahana_worker.proto import worker_pb2_grpc as pb_grpc

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.integration.test_prefetch import scheduler  # noqa: F401 - with its /metrics
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _worker_calls(metrics_port: int) -> dict[tuple[str, str], float]:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total") and "grpc_method" in sample.labels:
                key = (family.name, sample.labels["grpc_method"])
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def test_a_worker_reports_over_one_stream_and_makes_no_report_calls(
    scheduler: harness.SchedulerProcess,  # noqa: F811 - the fixture imported above
    client: harness.Client,
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1")
    wait_until(lambda: client.list_workers(), timeout=20, message="the worker registered")
    ids = client.submit(*[harness.submission("true", name=f"t{i}") for i in range(20)])
    wait_until(
        lambda: all(client.status(t) == scheduler_pb.COMPLETED for t in ids),
        timeout=60,
        message="the tasks completed",
    )
    assert scheduler.metrics_port is not None
    counts = _worker_calls(scheduler.metrics_port)
    assert counts.get(("vahana_grpc_server_started", "StreamTaskStatus")) == 1
    # A message per report, each carrying the updates that were ready (a task's RUNNING and
    # its result, often more than one task's): at least one, at most two per task.
    assert 1 <= counts.get(("vahana_grpc_server_msg_received", "StreamTaskStatus"), 0) <= 40
    assert counts.get(("vahana_grpc_server_started", "BatchUpdateTaskStatus"), 0) == 0


class _OldScheduler(pb_grpc.WorkerServiceServicer):
    """A scheduler of before the stream, or one that never answers on it (`silent`)."""

    def __init__(self, *, stream: str = "missing") -> None:
        self.stream = stream
        self.streams: list[dict[str, str]] = []
        self.unary = 0
        self._release = threading.Event()

    def BatchUpdateTaskStatus(self, request: Any, context: Any) -> pb.BatchUpdateTaskStatusResponse:
        self.unary += 1
        return _answer(request)

    def StreamTaskStatus(self, requests: Any, context: Any) -> Iterator[Any]:
        if self.stream == "missing":
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        self.streams.append(dict(context.invocation_metadata()))
        for request in requests:
            if self.stream == "silent":
                self._release.wait(30)
                return
            yield _answer(request)

    def release(self) -> None:
        self._release.set()


def _answer(request: pb.BatchUpdateTaskStatusRequest) -> pb.BatchUpdateTaskStatusResponse:
    return pb.BatchUpdateTaskStatusResponse(
        success=True,
        results=[
            pb.UpdateResult(task_id=u.task_id, attempt=u.attempt, accepted=True)
            for u in request.updates
        ],
    )


@pytest.fixture
def old_scheduler(request: pytest.FixtureRequest) -> Iterator[tuple[_OldScheduler, str]]:
    servicer = _OldScheduler(stream=getattr(request, "param", "missing"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_WorkerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    servicer.release()
    server.stop(None)


def _client(address: str, tmp_path: Path, timeout: float = 10.0) -> client.SchedulerClient:
    config = settings.load(
        {"worker_id": "w", "server_address": address, "working_dir": str(tmp_path)}, {}
    )
    return client.SchedulerClient(config, call_timeout=timeout)


UPDATE = pb.UpdateTaskStatusRequest(worker_id="w", task_id="t", attempt=1, status=pb.RUNNING)


def test_without_the_stream_the_worker_sends_a_call_per_report(
    old_scheduler: tuple[_OldScheduler, str], tmp_path: Path
) -> None:
    servicer, address = old_scheduler
    link = _client(address, tmp_path)
    try:
        for _ in range(3):
            assert link.batch_update([UPDATE]).results[0].accepted
    finally:
        link.close()
    assert servicer.unary == 3  # the first after the stream's UNIMPLEMENTED, then at once


@pytest.mark.parametrize("old_scheduler", ["silent"], indirect=True)
def test_an_answer_that_does_not_come_in_time_fails_the_report_and_the_next_opens_a_stream(
    old_scheduler: tuple[_OldScheduler, str], tmp_path: Path
) -> None:
    servicer, address = old_scheduler
    link = _client(address, tmp_path, timeout=0.5)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            link.batch_update([UPDATE])
        assert client.code_of(caught.value) is grpc.StatusCode.DEADLINE_EXCEEDED
        assert client.is_transient(caught.value)
        with pytest.raises(grpc.RpcError):
            link.batch_update([UPDATE])
        assert len(servicer.streams) == 2
        assert servicer.unary == 0
    finally:
        link.close()


@pytest.mark.parametrize("old_scheduler", ["answering"], indirect=True)
def test_a_new_token_opens_a_new_stream_that_carries_it(
    old_scheduler: tuple[_OldScheduler, str], tmp_path: Path
) -> None:
    servicer, address = old_scheduler
    link = _client(address, tmp_path)
    try:
        link.batch_update([UPDATE])
        link.batch_update([UPDATE])
        link.credentials.accept(pb.RegisterWorkerResponse(token="fresh"))
        link.batch_update([UPDATE])
    finally:
        link.close()
    assert [s.get("authorization") for s in servicer.streams] == [None, "Bearer fresh"]
