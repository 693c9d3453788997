"""Bare-metal pools over a real sshd on 127.0.0.1: many tasks, a killed worker, clean removal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from vahana.core import models, tokens
from vahana.proto import worker_pb2

from tests.fixtures import sshd
from tests.integration import harness
from tests.integration.pools.embedded import EmbeddedScheduler
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
KEY = "default/metal"


def pool_yaml(
    server: sshd.Sshd, work: Path, *, port: int = 0, key: str = "", extra: str = ""
) -> str:
    return f"""\
apiVersion: vahana.dev/v1alpha1
kind: WorkerPool
metadata: {{name: metal}}
spec:
  type: baremetal
  minWorkers: 2
  maxWorkers: 2
  tasksPerWorker: 2
  idleTimeout: 10m
  baremetal:
    hosts:
      - {{host: 127.0.0.1, port: {port or server.port}, user: {server.user}, workersPerHost: 2}}
    sshKeyFile: {key or server.key_file}
    knownHostsFile: {server.known_hosts_file}
    workingDir: {work}
{extra}"""


@pytest.fixture
def dirs() -> Iterator[tuple[Path, Path]]:
    with (
        tempfile.TemporaryDirectory(prefix="vh-") as state,
        tempfile.TemporaryDirectory(prefix="vw-") as work,
    ):
        yield Path(state), Path(work)


def _processes_in(path: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "cwd").startswith(str(path)):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _all_final(client: harness.Client, ids: list[str]) -> bool:
    return all(client.status(i) in harness.FINAL for i in ids)


def _run_on_both_workers(sched: EmbeddedScheduler, count: int, timeout: float) -> harness.Client:
    """Waits for the pool's 2 workers, runs `count` `true` tasks, checks all COMPLETED."""
    assert sched.client is not None
    client = sched.client
    wait_until(lambda: len(sched.workers(KEY)) == 2, timeout=60, message="2 workers")
    ids = client.submit(*(harness.submission("true", f"t{i}") for i in range(count)))
    wait_until(lambda: _all_final(client, ids), timeout=timeout, message=f"{count} tasks final")
    assert {client.status(i) for i in ids} == {worker_pb2.COMPLETED}
    return client


def test_a_baremetal_pool_runs_200_tasks_survives_a_kill_and_leaves_nothing(
    sshd_server: sshd.Sshd, dirs: tuple[Path, Path]
) -> None:
    state, work = dirs
    with EmbeddedScheduler(state, pool_yaml(sshd_server, work)) as sched:
        client = _run_on_both_workers(sched, 200, timeout=90)
        # kill one remote worker's process group mid-task: its task is requeued and completes
        [task] = client.submit(harness.submission("sleep 4", "long"))
        wait_until(lambda: client.status(task) == worker_pb2.RUNNING, timeout=20)
        victim = client.get(task).worker_id
        group = next(
            int(line.split("=", 1)[1])
            for line in (state / "pools/default/metal/logs" / f"{victim}.log")
            .read_text()
            .splitlines()
            if line.startswith("VAHANA_WORKER_GROUP=")
        )
        os.killpg(group, signal.SIGKILL)
        wait_until(lambda: client.status(task) in harness.FINAL, timeout=60, message="rerun")
        info = client.get(task)
        assert info.status == worker_pb2.COMPLETED and info.worker_id != victim, info
        sched.call(sched.pools.remove(KEY))
        wait_until(lambda: not _processes_in(work), timeout=60, message="no process left")
        wait_until(lambda: not any(work.iterdir()), timeout=30, message="working dirs removed")


def test_a_bad_key_or_an_unreachable_host_is_reported_and_no_task_is_lost(
    sshd_server: sshd.Sshd, dirs: tuple[Path, Path]
) -> None:
    state, work = dirs
    bad_key = state / "wrong_key"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {bad_key}")  # noqa: S605
    for yaml, expected in (
        (pool_yaml(sshd_server, work, key=str(bad_key)), "Permission denied"),
        (pool_yaml(sshd_server, work, port=harness.free_port()), "Connection refused"),
    ):
        with EmbeddedScheduler(state / expected.split()[0], yaml) as sched:
            assert sched.client is not None
            [task] = sched.client.submit(harness.submission("true", "waits"))
            wait_until(
                lambda s=sched, e=expected: e in (s.status(KEY).get("lastError") or ""),
                timeout=30,
                message=expected,
            )
            assert sched.client.status(task) == worker_pb2.PENDING


def test_with_mutual_tls_and_tokens_pilots_use_their_pools_certificates_and_secret(
    sshd_server: sshd.Sshd, dirs: tuple[Path, Path]
) -> None:
    """A pilot connects with the TLS files its pool names and registers with its pool's secret
    (never the master one)."""
    state, work = dirs
    pki = state / "pki"
    subprocess.run(
        [sys.executable, "-m", "vahana.cli.main", "certs", f"--out={pki}", "--workers=1"],
        check=True,
        capture_output=True,
    )
    master = pki / "bootstrap-token"
    master.write_text("the-master-secret\n")
    tls = (
        f"    tls: {{caFile: {pki / 'ca.pem'}, certFile: {pki / 'worker-1.pem'},"
        f" keyFile: {pki / 'worker-1-key.pem'}}}\n"
    )
    settings = {
        "auth.bootstrap_token_file": str(master),
        "tls.cert_file": str(pki / "server.pem"),
        "tls.key_file": str(pki / "server-key.pem"),
        "tls.client_ca_file": str(pki / "ca.pem"),
    }
    client_credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client-key.pem").read_bytes(),
        certificate_chain=(pki / "client.pem").read_bytes(),
    )
    # Without the pool's TLS files the pool says what it needs and starts nothing.
    with EmbeddedScheduler(
        state / "plain", pool_yaml(sshd_server, work), credentials=client_credentials, **settings
    ) as sched:
        assert "spec.baremetal.tls: required" in sched.status(KEY).get("lastError", "")
    yaml = pool_yaml(sshd_server, work, extra=tls)
    with EmbeddedScheduler(state / "s", yaml, credentials=client_credentials, **settings) as sched:
        _run_on_both_workers(sched, 10, timeout=60)
        secrets_seen = set()
        for pid in _processes_in(work):
            try:
                environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            assert not any(b"the-master-secret" in entry for entry in environ)
            secrets_seen.update(
                entry.split(b"=", 1)[1]
                for entry in environ
                if entry.startswith(b"VAHANA_WORKER_BOOTSTRAP_TOKEN=")
            )
        assert secrets_seen == {tokens.pool_secret("the-master-secret", KEY).encode()}


def test_a_killed_pilot_has_its_task_rerun_at_once_and_completed_once(
    sshd_server: sshd.Sshd, dirs: tuple[Path, Path]
) -> None:
    """kill -9 of a bare-metal pilot mid-task: its ssh session ends with it, and the scheduler
    dispatches a new attempt within 2 s — with 30 s heartbeats, so no missed heartbeat could
    have told it — which completes on the other pilot, once."""
    state, work = dirs
    marker = state / "ran"
    settings = {"scheduler.heartbeat_interval_seconds": 30.0, "metrics.port": harness.free_port()}
    with EmbeddedScheduler(state, pool_yaml(sshd_server, work), **settings) as sched:
        assert sched.client is not None
        client = sched.client
        wait_until(lambda: len(sched.workers(KEY)) == 2, timeout=60, message="2 pilots")
        events = sched.watch()
        [task] = client.submit(harness.submission(f"sleep 2; echo ran >> {marker}", "victim"))
        wait_until(lambda: client.status(task) == worker_pb2.RUNNING, timeout=20)
        victim = client.get(task).worker_id
        pilot = _worker_group(state, victim)  # setsid made the worker its group's leader
        killed = time.monotonic()
        os.kill(pilot, signal.SIGKILL)
        rerun = wait_until(lambda: events.first(task, attempt=2), timeout=30, message="attempt 2")
        seconds = rerun.at - killed
        print(f"bare-metal pilot kill -9 → attempt 2 dispatched: {seconds:.3f} s (heartbeat 30 s)")
        assert seconds < 2.0, f"the new attempt took {seconds:.2f} s"
        assert rerun.worker_id != victim
        wait_until(lambda: client.status(task) in harness.FINAL, timeout=30, message="rerun")
        info = client.get(task)
        assert (info.status, info.attempt, info.infra_failures) == (worker_pb2.COMPLETED, 2, 1)
        lost, completed = sched.attempts(task)
        assert (lost.worker_id, lost.phase, lost.failure_kind) == (
            victim,
            models.TaskPhase.FAILED,
            models.FailureKind.INFRASTRUCTURE,
        )
        print(f"attempt 1: {lost.message}")
        assert lost.message.startswith(f"worker {victim} exited: its "), lost.message
        assert completed.worker_id == rerun.worker_id
        assert completed.phase == models.TaskPhase.COMPLETED
        # Exactly once: nothing of the killed attempt is left that could still write.
        wait_until(
            lambda: not harness.processes_in(work / victim),
            timeout=60,
            message="no process of the killed pilot's task",
        )
        assert marker.read_text().splitlines() == ["ran"]


def _worker_group(state: Path, worker_id: str) -> int:
    log = state / "pools/default/metal/logs" / f"{worker_id}.log"
    return next(
        int(line.split("=", 1)[1])
        for line in log.read_text().splitlines()
        if line.startswith("VAHANA_WORKER_GROUP=")
    )
