"""The token guard: who may call what, and the binding of a call to the token's worker id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import grpc
import pytest
from vahana.core import clock, tokens
from vahana.proto import worker_pb2 as pb
from vahana.rpc import auth


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code


class Context:
    def __init__(self, token: str = "") -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Refused(code, details)


LEASES = {("t-1", 1): "w1", ("t-2", 1): "w2"}
POOLS = {"w1": "ns/a", "w2": "ns/b"}


@pytest.fixture
def guard(tmp_path: Path) -> auth.Guard:
    (tmp_path / "bootstrap").write_text("the-bootstrap\n")
    (tmp_path / "client").write_text("the-client\n")
    return auth.Guard(
        tokens=tokens.TokenStore(lifetime_seconds=60, clock=clock.FakeClock()),
        bootstrap=auth.FileSecret(tmp_path / "bootstrap"),
        client_secret=auth.FileSecret(tmp_path / "client"),
        lease_holder=lambda task_id, attempt: LEASES.get((task_id, attempt)),
        worker_pool=POOLS.get,
    )


def code_of(call: Awaitable[None]) -> grpc.StatusCode | None:
    try:
        asyncio.run(call)  # type: ignore[arg-type]
    except Refused as refused:
        return refused.code
    return None


def check(guard: auth.Guard, method: str, request: object, token: str) -> grpc.StatusCode | None:
    return code_of(guard(auth.WORKER_SERVICE, method, request, Context(token)))


def test_register_takes_the_bootstrap_secret_for_any_id(guard: auth.Guard) -> None:
    request = pb.RegisterWorkerRequest(worker_id="anyone")
    assert check(guard, "RegisterWorker", request, "the-bootstrap") is None
    assert check(guard, "RegisterWorker", request, "wrong") == grpc.StatusCode.UNAUTHENTICATED
    assert check(guard, "RegisterWorker", request, "") == grpc.StatusCode.UNAUTHENTICATED


def test_a_worker_token_acts_for_its_own_id_only(guard: auth.Guard) -> None:
    assert guard.tokens is not None
    token = guard.tokens.issue("w1").token
    mine, theirs = pb.HeartbeatRequest(worker_id="w1"), pb.HeartbeatRequest(worker_id="w2")
    assert check(guard, "SendHeartbeat", mine, token) is None
    assert check(guard, "SendHeartbeat", theirs, token) == grpc.StatusCode.PERMISSION_DENIED
    again = pb.RegisterWorkerRequest(worker_id="w1", pool="ns/a")
    assert check(guard, "RegisterWorker", again, token) is None
    other = pb.RegisterWorkerRequest(worker_id="w2")
    assert check(guard, "RegisterWorker", other, token) == grpc.StatusCode.PERMISSION_DENIED
    assert check(guard, "SendHeartbeat", mine, "the-bootstrap") == grpc.StatusCode.UNAUTHENTICATED


def test_reports_on_another_workers_lease_are_denied(guard: auth.Guard) -> None:
    assert guard.tokens is not None
    token = guard.tokens.issue("w1").token

    def update(task_id: str, worker_id: str = "w1") -> pb.UpdateTaskStatusRequest:
        return pb.UpdateTaskStatusRequest(
            task_id=task_id, worker_id=worker_id, attempt=1, status=pb.COMPLETED
        )

    assert check(guard, "UpdateTaskStatus", update("t-1"), token) is None
    assert check(guard, "UpdateTaskStatus", update("t-unknown"), token) is None  # lease check's
    denied = grpc.StatusCode.PERMISSION_DENIED
    assert check(guard, "UpdateTaskStatus", update("t-2"), token) == denied
    batch = pb.BatchUpdateTaskStatusRequest(worker_id="w1", updates=[update("t-1"), update("t-2")])
    assert check(guard, "BatchUpdateTaskStatus", batch, token) == denied
    smuggled = pb.BatchUpdateTaskStatusRequest(worker_id="w1", updates=[update("t-1", "w2")])
    assert check(guard, "BatchUpdateTaskStatus", smuggled, token) == denied


def test_client_calls_need_the_client_token(guard: auth.Guard) -> None:
    service = "vahana.TaskService"
    listing = pb.ListWorkersRequest()
    assert code_of(guard(service, "GetTask", object(), Context("the-client"))) is None
    assert code_of(guard(service, "GetTask", object(), Context(""))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert check(guard, "ListWorkers", listing, "the-client") is None
    assert check(guard, "ListWorkers", listing, "the-bootstrap") == (
        grpc.StatusCode.UNAUTHENTICATED
    )


def test_a_rotated_bootstrap_file_is_reread(guard: auth.Guard, tmp_path: Path) -> None:
    (tmp_path / "bootstrap").write_text("the-new-bootstrap-secret\n")
    request = pb.RegisterWorkerRequest(worker_id="w9")
    assert check(guard, "RegisterWorker", request, "the-new-bootstrap-secret") is None
    assert check(guard, "RegisterWorker", request, "the-bootstrap") == (
        grpc.StatusCode.UNAUTHENTICATED
    )


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(auth.SecretFileError, match="empty"):
        auth.FileSecret(tmp_path / "empty")


def test_a_pools_secret_registers_workers_of_that_pool_only(guard: auth.Guard) -> None:
    secret_a = tokens.pool_secret("the-bootstrap", "ns/a")
    denied, unknown = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED

    def register(worker_id: str, pool: str, token: str) -> grpc.StatusCode | None:
        request = pb.RegisterWorkerRequest(worker_id=worker_id, pool=pool)
        return check(guard, "RegisterWorker", request, token)

    assert register("new", "ns/a", secret_a) is None
    assert register("w1", "ns/a", secret_a) is None  # a registered worker of pool a, again
    assert register("new", "ns/b", secret_a) == unknown
    assert register("new", "", secret_a) == unknown
    assert register("w2", "ns/a", secret_a) == denied  # taking over pool b's worker
    assert register("new", "ns/a", tokens.pool_secret("another-master", "ns/a")) == unknown
    # The master secret admits any pool; a pool's secret is no good for anything else.
    assert register("w2", "ns/a", "the-bootstrap") is None
    assert check(guard, "SendHeartbeat", pb.HeartbeatRequest(worker_id="w1"), secret_a) == unknown


def test_a_worker_token_cannot_move_its_worker_to_another_pool(guard: auth.Guard) -> None:
    assert guard.tokens is not None
    token = guard.tokens.issue("w1").token
    moved = pb.RegisterWorkerRequest(worker_id="w1", pool="ns/b")
    assert check(guard, "RegisterWorker", moved, token) == grpc.StatusCode.PERMISSION_DENIED


def test_pool_secrets_differ_by_pool_and_master() -> None:
    secret = tokens.pool_secret("m", "ns/a")
    assert secret == tokens.pool_secret("m", "ns/a")
    assert secret not in {tokens.pool_secret("m", "ns/b"), tokens.pool_secret("m2", "ns/a")}
    with pytest.raises(ValueError):
        tokens.pool_secret("m", "")


class CertContext(Context):
    def __init__(self, *names: str) -> None:
        super().__init__()
        self._names = [name.encode() for name in names]

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_common_name": self._names} if self._names else {}


def test_bound_certificates_must_name_the_worker_or_its_pool() -> None:
    guard = auth.Guard(
        tokens=None,
        bootstrap=None,
        client_secret=None,
        lease_holder=lambda task_id, attempt: LEASES.get((task_id, attempt)),
        worker_pool=POOLS.get,
        bind_certificates=True,
    )
    denied = grpc.StatusCode.PERMISSION_DENIED

    def call(method: str, request: object, *names: str) -> grpc.StatusCode | None:
        return code_of(guard(auth.WORKER_SERVICE, method, request, CertContext(*names)))

    heartbeat = pb.HeartbeatRequest(worker_id="w1")
    assert call("SendHeartbeat", heartbeat, "w1") is None
    assert call("SendHeartbeat", heartbeat, "ns/a") is None  # w1's pool
    assert call("SendHeartbeat", heartbeat, "w2") == denied
    assert call("SendHeartbeat", heartbeat, "ns/b") == denied
    assert call("SendHeartbeat", heartbeat) == denied
    new = pb.RegisterWorkerRequest(worker_id="new", pool="ns/a")
    assert call("RegisterWorker", new, "ns/a") is None
    assert call("RegisterWorker", new, "ns/b") == denied
    moved = pb.RegisterWorkerRequest(worker_id="w1", pool="ns/b")
    assert call("RegisterWorker", moved, "ns/b") == denied  # w1 is pool a's
    assert call("RegisterWorker", moved, "w1") is None  # its own certificate may
    assert call("ListWorkers", pb.ListWorkersRequest()) is None
