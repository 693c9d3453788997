"""Mutual TLS and per-worker tokens against a real `vahana server` and real worker processes.

Certificates come from `vahana certs`. Each test would fail without the protection it names:
connections without a client certificate (or with one from another CA) are refused, a worker's
token does not let it act for another worker, revoked or expired tokens are refused, server
certificates rotate without a restart, and no token appears in any log.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from vahana.proto import worker_pb2 as pb
from vahana.proto import worker_pb2_grpc

from tests.integration import harness
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


def make_certs(out: Path, workers: int = 2) -> Path:
    subprocess.run(
        [sys.executable, "-m", "vahana.cli.main", "certs", f"--out={out}", f"--workers={workers}"],
        check=True,
        capture_output=True,
    )
    return out


def credentials(pki: Path, who: str | None = "client", ca: Path | None = None) -> Any:
    """Channel credentials trusting `ca` (default: the pki's CA), presenting `who`'s cert."""
    return grpc.ssl_channel_credentials(
        root_certificates=(ca or pki / "ca.pem").read_bytes(),
        private_key=(pki / f"{who}-key.pem").read_bytes() if who else None,
        certificate_chain=(pki / f"{who}.pem").read_bytes() if who else None,
    )


def secret(pki: Path) -> str:
    return (pki / "bootstrap-token").read_text().strip()


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("other-ca"))


def tls_flags(pki: Path) -> tuple[str, ...]:
    return (
        f"--tls-cert-file={pki / 'server.pem'}",
        f"--tls-key-file={pki / 'server-key.pem'}",
        f"--tls-client-ca-file={pki / 'ca.pem'}",
        f"--bootstrap-token-file={pki / 'bootstrap-token'}",
    )


StartScheduler = Callable[..., harness.SchedulerProcess]


@pytest.fixture
def start_scheduler(tmp_path: Path) -> Iterator[StartScheduler]:
    started: list[harness.SchedulerProcess] = []

    def start(pki: Path, **env: str) -> harness.SchedulerProcess:
        state = tmp_path / f"scheduler-{len(started)}"
        state.mkdir()
        process = harness.SchedulerProcess(
            state_dir=state, extra=tls_flags(pki), credentials=credentials(pki), env=env
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., harness.WorkerProcess]]:
    started: list[harness.WorkerProcess] = []

    def start(scheduler: harness.SchedulerProcess, pki: Path, name: str, n: int = 1) -> Any:
        worker = harness.WorkerProcess(
            worker_id=name,
            server_address=scheduler.address,
            working_dir=tmp_path / name,
            extra=(
                f"--tls-ca-file={pki / 'ca.pem'}",
                f"--tls-cert-file={pki / f'worker-{n}.pem'}",
                f"--tls-key-file={pki / f'worker-{n}-key.pem'}",
                f"--bootstrap-token-file={pki / 'bootstrap-token'}",
            ),
        )
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.cleanup()


def stub(scheduler: harness.SchedulerProcess, pki: Path, who: str = "client") -> Any:
    channel = grpc.secure_channel(scheduler.address, credentials(pki, who))
    return worker_pb2_grpc.WorkerServiceStub(channel)


def register(workers_stub: Any, worker_id: str, token: str) -> pb.RegisterWorkerResponse:
    request = pb.RegisterWorkerRequest(
        worker_id=worker_id,
        capabilities=pb.WorkerCapabilities(
            cpu_cores=1, memory_bytes=1 << 30, max_concurrent_tasks=1
        ),
    )
    response: pb.RegisterWorkerResponse = workers_stub.RegisterWorker(
        request, timeout=5, metadata=bearer(token)
    )
    return response


def refused_code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    code: grpc.StatusCode = caught.value.code()
    return code


def health_check(address: str, creds: Any) -> None:
    with grpc.secure_channel(address, creds) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)


def test_connections_without_a_client_cert_or_with_another_cas_cert_are_refused(
    pki: Path, other_pki: Path, start_scheduler: StartScheduler
) -> None:
    scheduler = start_scheduler(pki)
    health_check(scheduler.address, credentials(pki))  # the right certificate gets through

    no_cert = credentials(pki, who=None)
    other_ca_cert = credentials(other_pki, "worker-1", ca=pki / "ca.pem")
    for creds in (no_cert, other_ca_cert):
        assert refused_code(lambda c=creds: health_check(scheduler.address, c)) == (
            grpc.StatusCode.UNAVAILABLE
        )
    with grpc.insecure_channel(scheduler.address) as plaintext:
        assert (
            refused_code(
                lambda: health_pb2_grpc.HealthStub(plaintext).Check(
                    health_pb2.HealthCheckRequest(), timeout=3
                )
            )
            == grpc.StatusCode.UNAVAILABLE
        )
    assert "Handshake failed" in scheduler.log_text()


def test_a_worker_with_mutual_tls_and_a_token_runs_a_task_and_no_token_is_logged(
    pki: Path, start_scheduler: StartScheduler, workers: Callable[..., harness.WorkerProcess]
) -> None:
    scheduler = start_scheduler(pki)
    worker = workers(scheduler, pki, "w-secure")
    client = harness.Client(scheduler.address, credentials(pki))
    wait_until(lambda: client.list_workers(), timeout=20, message="the worker registered")
    [task_id] = client.submit(harness.submission("echo hello; env", name="secure"))
    wait_until(
        lambda: client.status(task_id) in harness.FINAL, timeout=30, message="the task ended"
    )
    info = client.get(task_id)
    assert info.status == pb.COMPLETED, info.message
    assert "hello" in info.output_tail
    # The test's own registration: a token it knows, to look for in the logs.
    issued = register(stub(scheduler, pki), "w-probe", secret(pki)).token
    assert issued
    client.close()
    worker.terminate()
    scheduler.stop()
    logs = scheduler.log_text() + worker.log_text() + info.output_tail
    assert secret(pki) not in logs
    assert issued not in logs
    assert "Bearer" not in logs
    assert "BOOTSTRAP" not in info.output_tail  # the task's environment holds no secret


def fingerprint_served(address: str, pki: Path) -> str:
    """SHA-256 of the certificate the server presents on a new connection."""
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(pki / "client.pem"), str(pki / "client-key.pem"))
    context.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def fingerprint_file(path: Path) -> str:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_a_rotated_server_certificate_is_served_without_a_restart(
    tmp_path: Path, start_scheduler: StartScheduler
) -> None:
    pki = make_certs(tmp_path / "rotating")
    scheduler = start_scheduler(pki)
    assert scheduler.process is not None
    pid = scheduler.process.pid
    before = fingerprint_file(pki / "server.pem")
    assert fingerprint_served(scheduler.address, pki) == before

    make_certs(pki)  # same CA, new server and client certificates, files replaced
    after = fingerprint_file(pki / "server.pem")
    assert after != before
    wait_until(
        lambda: fingerprint_served(scheduler.address, pki) == after,
        timeout=10,
        message="new connections get the new certificate",
    )
    health_check(scheduler.address, credentials(pki))
    assert scheduler.process.pid == pid and scheduler.process.poll() is None
    assert "reloaded TLS certificates" in scheduler.log_text()


def test_a_token_does_not_act_for_another_worker(
    pki: Path, start_scheduler: StartScheduler, workers: Callable[..., harness.WorkerProcess]
) -> None:
    scheduler = start_scheduler(pki)
    victim = workers(scheduler, pki, "victim")
    client = harness.Client(scheduler.address, credentials(pki))
    [task_id] = client.submit(harness.submission("sleep 60", name="victims"))
    wait_until(
        lambda: client.status(task_id) == pb.RUNNING, timeout=30, message="the victim runs it"
    )
    before = client.get(task_id)
    assert before.worker_id == "victim"

    attacker = stub(scheduler, pki, "worker-2")
    token = register(attacker, "attacker", secret(pki)).token
    mine = bearer(token)
    lease = pb.TaskLease(task_id=task_id, attempt=before.attempt)
    theirs = pb.UpdateTaskStatusRequest(
        task_id=task_id, worker_id="victim", status=pb.COMPLETED, attempt=before.attempt
    )
    on_their_task = pb.UpdateTaskStatusRequest(
        task_id=task_id, worker_id="attacker", status=pb.FAILED, attempt=before.attempt
    )
    calls: dict[str, Callable[[], object]] = {
        "RegisterWorker": lambda: attacker.RegisterWorker(
            pb.RegisterWorkerRequest(worker_id="victim"), timeout=5, metadata=mine
        ),
        "PollForTask": lambda: attacker.PollForTask(
            pb.PollForTaskRequest(worker_id="victim", max_tasks=1), timeout=5, metadata=mine
        ),
        "UpdateTaskStatus": lambda: attacker.UpdateTaskStatus(theirs, timeout=5, metadata=mine),
        "UpdateTaskStatus on their task": lambda: attacker.UpdateTaskStatus(
            on_their_task, timeout=5, metadata=mine
        ),
        "SendHeartbeat": lambda: attacker.SendHeartbeat(
            pb.HeartbeatRequest(worker_id="victim"), timeout=5, metadata=mine
        ),
        "SendHeartbeat with their lease": lambda: attacker.SendHeartbeat(
            pb.HeartbeatRequest(worker_id="attacker", running_tasks=[lease]),
            timeout=5,
            metadata=mine,
        ),
        "BatchUpdateTaskStatus": lambda: attacker.BatchUpdateTaskStatus(
            pb.BatchUpdateTaskStatusRequest(worker_id="victim", updates=[theirs], max_tasks=1),
            timeout=5,
            metadata=mine,
        ),
        "BatchUpdateTaskStatus on their task": lambda: attacker.BatchUpdateTaskStatus(
            pb.BatchUpdateTaskStatusRequest(worker_id="attacker", updates=[on_their_task]),
            timeout=5,
            metadata=mine,
        ),
        "UpdateWorkerStatus": lambda: attacker.UpdateWorkerStatus(
            pb.UpdateWorkerStatusRequest(worker_id="victim", status=pb.TERMINATED),
            timeout=5,
            metadata=mine,
        ),
    }
    codes = {name: refused_code(call) for name, call in calls.items()}
    assert codes == dict.fromkeys(calls, grpc.StatusCode.PERMISSION_DENIED)

    after = client.get(task_id)
    assert (after.status, after.worker_id, after.attempt) == (
        pb.RUNNING,
        "victim",
        before.attempt,
    )
    listed = {w.worker_id: w for w in client.list_workers()}
    assert listed["victim"].status == pb.BUSY
    assert list(listed["victim"].active_task_ids) == [task_id]
    assert victim.process is not None and victim.process.poll() is None
    # The attacker's token still works for its own id: it was the binding that refused.
    attacker.SendHeartbeat(pb.HeartbeatRequest(worker_id="attacker"), timeout=5, metadata=mine)
    client.close()


def test_missing_wrong_revoked_and_expired_tokens_are_unauthenticated(
    pki: Path, start_scheduler: StartScheduler, workers: Callable[..., harness.WorkerProcess]
) -> None:
    scheduler = start_scheduler(pki, VAHANA_AUTH_TOKEN_LIFETIME_SECONDS="3")
    link = stub(scheduler, pki, "worker-1")
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    assert refused_code(lambda: register(link, "w-a", "not-the-secret")) == unauthenticated
    assert refused_code(lambda: register(link, "w-a", "")) == unauthenticated

    token = register(link, "w-a", secret(pki)).token
    beat = pb.HeartbeatRequest(worker_id="w-a")
    assert refused_code(lambda: link.SendHeartbeat(beat, timeout=5)) == unauthenticated
    assert (
        refused_code(lambda: link.SendHeartbeat(beat, timeout=5, metadata=bearer(token + "x")))
        == unauthenticated
    )
    # The bootstrap secret is for registering only.
    assert (
        refused_code(lambda: link.SendHeartbeat(beat, timeout=5, metadata=bearer(secret(pki))))
        == unauthenticated
    )
    link.SendHeartbeat(beat, timeout=5, metadata=bearer(token))

    # Revoked: the worker leaves (TERMINATED), its token goes with it.
    link.UpdateWorkerStatus(
        pb.UpdateWorkerStatusRequest(worker_id="w-a", status=pb.TERMINATED),
        timeout=5,
        metadata=bearer(token),
    )
    assert (
        refused_code(lambda: link.SendHeartbeat(beat, timeout=5, metadata=bearer(token)))
        == unauthenticated
    )

    # Expired: three seconds after it was issued.
    fresh = register(link, "w-b", secret(pki))
    assert fresh.token_expires_at.seconds > 0
    beat_b = pb.HeartbeatRequest(worker_id="w-b")

    def expired() -> bool:
        try:
            link.SendHeartbeat(beat_b, timeout=5, metadata=bearer(fresh.token))
        except grpc.RpcError as error:
            return bool(error.code() == unauthenticated)
        return False

    wait_until(expired, timeout=10, interval=0.2, message="the token expired")

    # A real worker renews its token before it expires and keeps working past several lifetimes.
    worker = workers(scheduler, pki, "w-renewing")
    client = harness.Client(scheduler.address, credentials(pki))
    [task_id] = client.submit(harness.submission("sleep 7; echo done", name="long"))
    wait_until(
        lambda: client.status(task_id) in harness.FINAL, timeout=40, message="the task ended"
    )
    assert client.get(task_id).status == pb.COMPLETED
    listed = {w.worker_id: w.status for w in client.list_workers()}
    assert listed["w-renewing"] == pb.AVAILABLE
    assert scheduler.log_text().count("registered worker_id=w-renewing") >= 2  # renewed
    client.close()
    worker.terminate()
    assert token not in scheduler.log_text() + worker.log_text()


def test_with_bound_certificates_a_worker_certificate_acts_only_for_the_worker_it_names(
    pki: Path, start_scheduler: StartScheduler, workers: Callable[..., harness.WorkerProcess]
) -> None:
    scheduler = start_scheduler(pki, VAHANA_TLS_BIND_WORKER_CERTIFICATES="true")
    workers(scheduler, pki, "worker-1", 1)  # its certificate's CN is worker-1
    client = harness.Client(scheduler.address, credentials(pki))
    wait_until(lambda: client.list_workers(), timeout=20, message="worker-1 registered")
    [task_id] = client.submit(harness.submission("echo bound", name="bound"))
    wait_until(lambda: client.status(task_id) == pb.COMPLETED, timeout=30, message="task done")
    # worker-1's certificate with the bootstrap secret, registering as another worker: refused.
    as_worker_1 = stub(scheduler, pki, "worker-1")
    denied = refused_code(lambda: register(as_worker_1, "worker-2", secret(pki)))
    assert denied == grpc.StatusCode.PERMISSION_DENIED
    assert {w.worker_id for w in client.list_workers()} == {"worker-1"}
    client.close()


def test_after_the_bootstrap_secret_is_rotated_no_new_worker_gets_in_and_running_ones_keep_working(
    pki: Path, tmp_path: Path, workers: Callable[..., harness.WorkerProcess]
) -> None:
    master = tmp_path / "scheduler-bootstrap-token"
    master.write_text(secret(pki) + "\n")
    flags = tuple(
        f"--bootstrap-token-file={master}" if flag.startswith("--bootstrap-token-file=") else flag
        for flag in tls_flags(pki)
    )
    state = tmp_path / "scheduler-rotating"
    state.mkdir()
    scheduler = harness.SchedulerProcess(
        state_dir=state,
        extra=flags,
        credentials=credentials(pki),
        env={"VAHANA_AUTH_TOKEN_LIFETIME_SECONDS": "3"},
    ).start()
    client = harness.Client(scheduler.address, credentials(pki))
    try:
        workers(scheduler, pki, "w-rotating")  # started with the secret about to be replaced
        [task_id] = client.submit(harness.submission("sleep 8; echo done", name="long"))
        wait_until(lambda: client.status(task_id) == pb.RUNNING, timeout=20, message="running")

        master.write_text("rotated-secret-0123456789abcdef\n")
        link = stub(scheduler, pki, "worker-2")
        wait_until(
            lambda: (
                refused_code(lambda: register(link, "w-new", secret(pki)))
                == grpc.StatusCode.UNAUTHENTICATED
            ),
            timeout=10,
            message="the old secret refused",
        )
        register(link, "w-new", "rotated-secret-0123456789abcdef")  # the new one admits

        # The running worker renews its token with the token itself, past two lifetimes.
        wait_until(
            lambda: client.status(task_id) in harness.FINAL, timeout=40, message="task ended"
        )
        info = client.get(task_id)
        assert (info.status, info.attempt) == (pb.COMPLETED, 1)
        assert {w.worker_id: w.status for w in client.list_workers()}["w-rotating"] in (
            pb.AVAILABLE,
            pb.BUSY,
        )
        assert scheduler.log_text().count("registered worker_id=w-rotating") >= 3
    finally:
        client.close()
        scheduler.stop()


def test_a_client_without_tls_flags_is_told_the_scheduler_may_serve_tls(
    start_scheduler: StartScheduler, pki: Path
) -> None:
    from tests.integration.test_cli import vahana

    scheduler = start_scheduler(pki)
    plain = vahana("get", "workers", f"--server={scheduler.address}", timeout=60)
    assert plain.returncode == 1
    assert f"something listens at {scheduler.address} but does not answer plain gRPC" in (
        plain.stderr
    )
    assert "give --tls-ca-file" in plain.stderr
    wrong_ca = vahana(
        "get",
        "workers",
        f"--server={scheduler.address}",
        f"--tls-ca-file={pki / 'ca.pem'}",  # no client certificate: the server asks for one
        timeout=60,
    )
    assert wrong_ca.returncode == 1
    assert "the TLS connection failed" in wrong_ca.stderr
