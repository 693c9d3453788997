"""Commands that talk to a running scheduler over gRPC: submit, get, logs, cancel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from rich.console import Console

from vahana.cli import render
from vahana.core import models
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import task_service_pb2_grpc, worker_pb2, worker_pb2_grpc
from vahana.rpc import convert

FINAL = {worker_pb2.COMPLETED, worker_pb2.FAILED, worker_pb2.CANCELLED, worker_pb2.TIMED_OUT}


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), self._metadata])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


def channel(
    address: str,
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    token_file: str | None = None,
) -> grpc.Channel:
    """A channel to the scheduler: TLS when a CA file is given (mutual with cert and key),
    carrying the client token when a token file is given. Raises OSError for unreadable files."""
    if ca_file or cert_file or key_file:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(ca_file).read_bytes() if ca_file else None,
            private_key=Path(key_file).read_bytes() if key_file else None,
            certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
        )
        link = grpc.secure_channel(address, credentials)
    else:
        link = grpc.insecure_channel(address)
    if token_file:
        lines = Path(token_file).read_text().split()
        link = grpc.intercept_channel(link, _Bearer(lines[0] if lines else ""))
    return link


class Client:
    def __init__(
        self,
        address: str,
        timeout: float = 10.0,
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        token_file: str | None = None,
    ) -> None:
        self.address = address
        self._timeout = timeout
        self._channel = channel(
            address, ca_file=ca_file, cert_file=cert_file, key_file=key_file, token_file=token_file
        )
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self._channel)
        self.workers = worker_pb2_grpc.WorkerServiceStub(self._channel)

    def submit(self, submissions: list[models.Submission]) -> list[str]:
        request = tasks_pb.SubmitTasksRequest(
            tasks=[convert.submission_to_pb(s) for s in submissions]
        )
        return list(self.tasks.SubmitTasks(request, timeout=self._timeout).task_ids)

    def get(self, task: str) -> tasks_pb.TaskInfo:
        return self.tasks.GetTask(tasks_pb.GetTaskRequest(id=task), timeout=self._timeout)

    def list(self, status: str = "", limit: int = 0) -> list[tasks_pb.TaskInfo]:
        request = tasks_pb.ListTasksRequest(limit=limit)
        if status:
            request.status = worker_pb2.TaskStatus.Value(status.upper())
        return list(self.tasks.ListTasks(request, timeout=self._timeout).tasks)

    def list_workers(self) -> list[worker_pb2.WorkerInfo]:
        return list(
            self.workers.ListWorkers(worker_pb2.ListWorkersRequest(), timeout=self._timeout).workers
        )

    def cancel(self, task: str, reason: str) -> tasks_pb.CancelTaskResponse:
        return self.tasks.CancelTask(
            tasks_pb.CancelTaskRequest(id=task, reason=reason), timeout=self._timeout
        )

    def watch(self, ids: list[str]) -> Iterator[tasks_pb.TaskInfo]:
        yield from self.tasks.WatchTasks(tasks_pb.WatchTasksRequest(ids=ids, until_final=True))

    def close(self) -> None:
        self._channel.close()


def print_records(console: Console, records: list[object], output: str) -> None:
    """-o json / yaml: the records as the API returns them, for scripts."""
    data = [json_format.MessageToDict(r, preserving_proto_field_name=True) for r in records]  # type: ignore[arg-type]
    if output == "json":
        console.print_json(json.dumps(data if len(data) != 1 else data[0]))
    else:
        import yaml

        console.print(yaml.safe_dump(data if len(data) != 1 else data[0], sort_keys=False), end="")


def wait_for(client: Client, ids: list[str], console: Console) -> list[tasks_pb.TaskInfo]:
    latest: dict[str, tasks_pb.TaskInfo] = {}
    for info in client.watch(ids):
        latest[info.id] = info
        if info.status in FINAL:
            console.print(
                f"{info.name or info.id}: {render.status_name(info)} "
                f"(exit {render.exit_code(info)})"
            )
    return [latest[i] for i in ids if i in latest]
