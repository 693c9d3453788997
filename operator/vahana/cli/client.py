"""Commands that talk to a running scheduler over gRPC: submit, get, logs, cancel.

Submissions are idempotent: every task carries a key (`with_keys`: `<run key>/<namespace>/
<name>`), so a submission whose answer was lost is sent again with the same keys and the
scheduler answers with the ids it gave the first time instead of creating the tasks twice.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import yaml as yaml_module
from google.protobuf import json_format
from rich.console import Console

from vahana.cli import render
from vahana.core import models
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import task_service_pb2_grpc, worker_pb2, worker_pb2_grpc
from vahana.rpc import convert

FINAL = render.FINAL
LOST_ANSWER = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Codes of a call that may have been carried out although its answer never arrived."""
SUBMIT_SECONDS_PER_TASK = 0.002
"""Added to a submission's deadline per task: a large one takes the scheduler a while."""
CHANNEL_OPTIONS = (
    # Reconnect soon after a restarted scheduler is back (gRPC's default waits up to 2 min).
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class Unreachable(Exception):
    """No connection to the scheduler could be made: nothing was sent."""


class SubmissionUnanswered(Exception):
    """The scheduler gave no answer to a submission within the retry time: it may or may not
    have accepted it (the same keys, sent again, tell)."""

    def __init__(self, message: str, error: grpc.RpcError) -> None:
        super().__init__(message)
        self.error = error


@dataclasses.dataclass(frozen=True)
class Retry:
    """How a submission whose answer was lost is sent again, with the same keys."""

    for_seconds: float = 60.0
    """How long after the first lost answer to keep trying; 0: do not retry."""
    first_backoff_seconds: float = 0.25
    """Pause before the first retry, doubled after each one."""
    max_backoff_seconds: float = 5.0
    """Longest pause between two tries."""


RetryNotice = Callable[[int, grpc.RpcError, float], None]
"""Told before each retry: the attempt that failed (1 is the first), its error, the pause."""


def new_run_key() -> str:
    """A fresh key for one run of `vahana submit` or `vahana run`."""
    return str(uuid.uuid4())


def with_keys(submissions: Sequence[models.Submission], run_key: str) -> list[models.Submission]:
    """Each submission with its idempotency key `<run key>/<namespace>/<name>`; one that has a
    key already (its Task's metadata.uid) keeps it. Names are unique per namespace in a file,
    so the keys are too, and they stay the same when the file's documents are reordered."""
    return [
        submission
        if submission.key
        else dataclasses.replace(
            submission, key=f"{run_key}/{submission.namespace}/{submission.spec.name}"
        )
        for submission in submissions
    ]


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
    link = _plain_channel(address, ca_file=ca_file, cert_file=cert_file, key_file=key_file)
    return _with_token(link, token_file)


def _plain_channel(
    address: str, *, ca_file: str | None, cert_file: str | None, key_file: str | None
) -> grpc.Channel:
    if ca_file or cert_file or key_file:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(ca_file).read_bytes() if ca_file else None,
            private_key=Path(key_file).read_bytes() if key_file else None,
            certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
        )
        return grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def _with_token(link: grpc.Channel, token_file: str | None) -> grpc.Channel:
    if not token_file:
        return link
    lines = Path(token_file).read_text().split()
    return grpc.intercept_channel(link, _Bearer(lines[0] if lines else ""))


@dataclasses.dataclass(frozen=True)
class Listing:
    tasks: list[tasks_pb.TaskInfo]
    more: bool
    """The scheduler holds further tasks than `tasks` (the limit was reached)."""


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
        # The plain channel reports connectivity; calls go through `_channel` (with the token).
        self._link = _plain_channel(
            address, ca_file=ca_file, cert_file=cert_file, key_file=key_file
        )
        self._channel = _with_token(self._link, token_file)
        # The generated stubs are untyped: calls through them answer Any.
        self.tasks = task_service_pb2_grpc.TaskServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self.workers = worker_pb2_grpc.WorkerServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def submit(
        self,
        submissions: list[models.Submission],
        *,
        retry: Retry = Retry(),
        notice: RetryNotice | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[str]:
        """Submits and returns the task ids, in order. An answer lost after the request may have
        been sent (UNAVAILABLE, DEADLINE_EXCEEDED) is asked for again with the same request, so
        the submissions should carry keys (`with_keys`); other errors are raised at once.

        Raises `Unreachable` if no connection could be made at all (nothing was sent), and
        `SubmissionUnanswered` if no answer came within `retry.for_seconds` of the first loss.
        """
        request = tasks_pb.SubmitTasksRequest(
            tasks=[convert.submission_to_pb(s) for s in submissions]
        )
        if not self._connected(self._timeout):
            raise Unreachable(self.address)
        timeout = self._timeout + SUBMIT_SECONDS_PER_TASK * len(submissions)
        give_up_at: float | None = None
        pause = retry.first_backoff_seconds
        attempt = 1
        while True:
            try:
                return list(self.tasks.SubmitTasks(request, timeout=timeout).task_ids)
            except grpc.RpcError as error:
                if error.code() not in LOST_ANSWER:
                    raise
                if give_up_at is None:
                    give_up_at = clock() + retry.for_seconds
                if clock() + pause >= give_up_at or retry.for_seconds <= 0:
                    raise self._unanswered(len(submissions), retry, error) from error
                if notice is not None:
                    notice(attempt, error, pause)
                sleep(pause)
                pause = min(pause * 2, retry.max_backoff_seconds)
                if not self._ready_within(give_up_at - clock()):
                    raise self._unanswered(len(submissions), retry, error) from error
                attempt += 1

    def _unanswered(self, count: int, retry: Retry, error: grpc.RpcError) -> SubmissionUnanswered:
        code = error.code().name.lower()
        return SubmissionUnanswered(
            f"the scheduler at {self.address} gave no answer to the submission of {count} "
            f"task(s) ({code}: {error.details()}), tried again for {retry.for_seconds:g} s",
            error,
        )

    def _connected(self, timeout: float) -> bool:
        """Connects; False if the first outcome is a failure (the scheduler is not there)."""
        outcome: list[grpc.ChannelConnectivity] = []
        settled = threading.Event()
        ends = (
            grpc.ChannelConnectivity.READY,
            grpc.ChannelConnectivity.TRANSIENT_FAILURE,
            grpc.ChannelConnectivity.SHUTDOWN,
        )

        def seen(state: grpc.ChannelConnectivity) -> None:
            if state in ends and not outcome:
                outcome.append(state)
                settled.set()

        self._link.subscribe(seen, try_to_connect=True)
        try:
            settled.wait(timeout)
        finally:
            self._link.unsubscribe(seen)
        return outcome[:1] == [grpc.ChannelConnectivity.READY]

    def _ready_within(self, timeout: float) -> bool:
        """Waits for the scheduler to be reachable (again), through connection failures."""
        try:
            grpc.channel_ready_future(self._link).result(timeout=max(0.0, timeout))
        except grpc.FutureTimeoutError:
            return False
        return True

    def get(self, task: str) -> tasks_pb.TaskInfo:
        info: tasks_pb.TaskInfo = self.tasks.GetTask(
            tasks_pb.GetTaskRequest(id=task), timeout=self._timeout
        )
        return info

    def list_tasks(self, status: str = "", limit: int = 0) -> Listing:
        """Tasks oldest first, at most `limit` (0: all), read page by page; `more` says whether
        the scheduler holds further ones."""
        request = tasks_pb.ListTasksRequest()
        if status:
            request.status = worker_pb2.TaskStatus.Value(status.upper())
        found: list[tasks_pb.TaskInfo] = []
        while True:
            if limit:
                request.limit = limit - len(found)
            page = self.tasks.ListTasks(request, timeout=self._timeout)
            found.extend(page.tasks)
            if not page.next_page_token:
                return Listing(found, more=False)
            if limit and len(found) >= limit:
                return Listing(found[:limit], more=True)
            request.page_token = page.next_page_token

    def list_workers(self) -> list[worker_pb2.WorkerInfo]:
        return list(
            self.workers.ListWorkers(worker_pb2.ListWorkersRequest(), timeout=self._timeout).workers
        )

    def cancel(self, task: str, reason: str) -> tasks_pb.CancelTaskResponse:
        reply: tasks_pb.CancelTaskResponse = self.tasks.CancelTask(
            tasks_pb.CancelTaskRequest(id=task, reason=reason), timeout=self._timeout
        )
        return reply

    def watch(self, ids: list[str]) -> Iterator[tasks_pb.TaskInfo]:
        yield from self.tasks.WatchTasks(tasks_pb.WatchTasksRequest(ids=ids, until_final=True))

    def close(self) -> None:
        self._channel.close()


def print_records(console: Console, records: list[object], output: str) -> None:
    """-o json / yaml of `get tasks` and `get workers`: always a list (of one, or empty), the
    records as the API returns them (proto field names), for scripts."""
    _write(console, [_as_dict(record) for record in records], output)


def print_record(console: Console, record: object, output: str) -> None:
    """-o json / yaml of `get task`: one object."""
    _write(console, _as_dict(record), output)


def _as_dict(record: object) -> dict[str, Any]:
    as_dict: dict[str, Any] = json_format.MessageToDict(record, preserving_proto_field_name=True)
    return as_dict


def _write(console: Console, data: object, output: str) -> None:
    """Plain text on the console's file: no markup or highlighting to slow 100,000 records down
    or to be read from a task's name."""
    if output == "json" and console.is_terminal:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    elif output == "json" and isinstance(data, list):
        # One record per line: json's C encoder (indent turns it off), and lines for grep.
        lines = ",\n".join(json.dumps(item, ensure_ascii=False) for item in data)
        text = f"[\n{lines}\n]\n" if data else "[]\n"
    elif output == "json":
        text = json.dumps(data, ensure_ascii=False) + "\n"
    else:
        text = yaml_module.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    console.file.write(text)
    console.file.flush()


try:  # libyaml's emitter when PyYAML was built with it: 100,000 records in seconds
    _Dumper: type = yaml_module.CSafeDumper
except AttributeError:
    _Dumper = yaml_module.SafeDumper


def wait_for(client: Client, ids: list[str], console: Console) -> list[tasks_pb.TaskInfo]:
    latest: dict[str, tasks_pb.TaskInfo] = {}
    for info in client.watch(ids):
        latest[info.id] = info
        if info.status in FINAL:
            console.print(render.ended_line(info), markup=False)
    return [latest[i] for i in ids if i in latest]
