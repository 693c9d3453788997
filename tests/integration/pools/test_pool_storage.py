"""Tasks on local, bare-metal and SLURM pools read inputs from S3 and SFTP and write outputs to
both; the pool's `spec.storage` says where the stores are and how to log in (tasks name only
URLs), and where each task's whole output is kept (`taskOutput`). The files and the output are
there, byte-identical, once the pool and its workers are gone."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2

from tests.fixtures import s3, sshd
from tests.integration import harness
from tests.integration.pools.embedded import EmbeddedScheduler
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
MIB = 1 << 20


@pytest.fixture
def dirs() -> Iterator[tuple[Path, Path]]:
    with (
        tempfile.TemporaryDirectory(prefix="vh-") as state,
        tempfile.TemporaryDirectory(prefix="vw-") as work,
    ):
        yield Path(state), Path(work)


LOGS_BUCKET = "task-output"
PRINTED = "seq 1 30000"
"""What the round trip's task prints: more than the result's 64 KiB tail, so its whole output
is the one the worker spooled while it ran."""


def storage_section(server: s3.S3Server, ssh: sshd.Sshd, state: Path) -> str:
    credentials = state / "s3-credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {server.access_key}\n"
        f"aws_secret_access_key = {server.secret_key}\n"
    )
    return f"""\
  storage:
    s3: {{endpoint: "{server.endpoint}", region: us-east-1, credentialsFile: {credentials}}}
    sftp: {{user: {ssh.user}, sshKeyFile: {ssh.key_file}, knownHostsFile: {ssh.known_hosts_file}}}
    taskOutput: s3://{LOGS_BUCKET}/kept/
"""


def local_pool(storage: str) -> str:
    return f"""\
apiVersion: vahana.dev/v1alpha1
kind: WorkerPool
metadata: {{name: stage}}
spec:
  type: local
  minWorkers: 1
  maxWorkers: 1
{storage}"""


def baremetal_pool(ssh: sshd.Sshd, work: Path, storage: str) -> str:
    return f"""\
apiVersion: vahana.dev/v1alpha1
kind: WorkerPool
metadata: {{name: stage}}
spec:
  type: baremetal
  minWorkers: 1
  maxWorkers: 1
  baremetal:
    hosts:
      - {{host: 127.0.0.1, port: {ssh.port}, user: {ssh.user}}}
    sshKeyFile: {ssh.key_file}
    knownHostsFile: {ssh.known_hosts_file}
    workingDir: {work}
{storage}"""


def slurm_pool(work: Path, storage: str) -> str:
    return f"""\
apiVersion: vahana.dev/v1alpha1
kind: WorkerPool
metadata: {{name: stage}}
spec:
  type: slurm
  minWorkers: 1
  maxWorkers: 1
  walltime: 10m
  resources: {{cpu: 1, memory: 256Mi}}
  slurm: {{partition: debug, workingDir: {work}}}
{storage}"""


def staged_task(
    name: str, sftp: str, *, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]]
) -> tasks_pb.TaskSubmission:
    spec = worker_pb2.Task(
        name=name,
        command=f"cat a.bin b.bin > both.bin; mkdir -p logs; echo done > logs/run.log; {PRINTED}",
    )
    for source, destination in inputs:
        spec.input_files.add(source=source, destination=destination)
    for source, destination in outputs:
        spec.output_files.add(source=source, destination=destination)
    return tasks_pb.TaskSubmission(spec=spec)


@dataclasses.dataclass
class RoundTrip:
    bucket: Path
    remote: Path
    expected: bytes
    """What both.bin must hold."""
    output_log: Path
    """Where the task's whole output must be (the pool's taskOutput in the S3 server's dir)."""

    def check(self) -> None:
        """The outputs and the whole output are in storage, byte-identical."""
        assert (self.bucket / "results" / "both.bin").read_bytes() == self.expected
        assert (self.remote / "results" / "both.bin").read_bytes() == self.expected
        assert (self.bucket / "results" / "logs" / "run.log").read_text() == "done\n"
        printed = subprocess.run(PRINTED.split(), capture_output=True, check=True).stdout
        assert self.output_log.read_bytes() == printed


def run_round_trip(
    sched: EmbeddedScheduler, server: s3.S3Server, ssh: sshd.Sshd, tag: str
) -> RoundTrip:
    """Runs one task that joins an S3 and an SFTP input and writes the result to both, and
    whose output is kept in the pool's storage."""
    logs = server.bucket(LOGS_BUCKET)
    bucket = server.bucket(f"pool-{tag}")
    server.put(f"pool-{tag}", "a.bin", os.urandom(2 * MIB))
    remote = ssh.root / f"store-{tag}"
    remote.mkdir()
    (remote / "b.bin").write_bytes(os.urandom(MIB + 7))
    sftp = f"sftp://127.0.0.1:{ssh.port}{remote}"
    assert sched.client is not None
    [task] = sched.client.submit(
        staged_task(
            f"round-trip-{tag}",
            sftp,
            inputs=[(f"s3://pool-{tag}/a.bin", "a.bin"), (f"{sftp}/b.bin", "b.bin")],
            outputs=[
                ("both.bin", f"s3://pool-{tag}/results/"),
                ("both.bin", f"{sftp}/results/both.bin"),
                ("logs", f"s3://pool-{tag}/results/"),
            ],
        )
    )
    wait_until(
        lambda: sched.client is not None and sched.client.status(task) in harness.FINAL,
        timeout=90,
        message="the task ends",
    )
    info = sched.client.get(task)
    assert info.status == worker_pb2.COMPLETED, info
    assert info.output_log == f"s3://{LOGS_BUCKET}/kept/{task}/attempt-1.log", info.output_log
    # The scheduler's copy (`vahana logs`) is the same output.
    assert sched.process is not None
    kept = sched.process.outputs.read(task, 1, 0, MIB)
    printed = subprocess.run(PRINTED.split(), capture_output=True, check=True).stdout
    assert kept == printed
    return RoundTrip(
        bucket,
        remote,
        (bucket / "a.bin").read_bytes() + (remote / "b.bin").read_bytes(),
        logs / "kept" / task / "attempt-1.log",
    )


def test_a_local_pool_task_reads_and_writes_s3_and_sftp(
    s3_server: s3.S3Server, sshd_server: sshd.Sshd, dirs: tuple[Path, Path]
) -> None:
    state, _ = dirs
    pool = local_pool(storage_section(s3_server, sshd_server, state))
    with EmbeddedScheduler(state, pool) as sched:
        trip = run_round_trip(sched, s3_server, sshd_server, "local")
        sched.call(sched.pools.remove("default/stage"))
    trip.check()


def test_a_baremetal_pilot_task_reads_and_writes_s3_and_sftp_and_they_outlive_it(
    s3_server: s3.S3Server, sshd_server: sshd.Sshd, dirs: tuple[Path, Path]
) -> None:
    state, work = dirs
    pool = baremetal_pool(sshd_server, work, storage_section(s3_server, sshd_server, state))
    with EmbeddedScheduler(state, pool) as sched:
        wait_until(lambda: len(sched.workers("default/stage")) == 1, timeout=60, message="pilot")
        trip = run_round_trip(sched, s3_server, sshd_server, "metal")
        sched.call(sched.pools.remove("default/stage"))
        wait_until(lambda: not any(work.iterdir()), timeout=30, message="the pilot's dir gone")
    trip.check()


def test_a_slurm_pilot_task_reads_and_writes_s3_and_sftp_and_they_outlive_it(
    s3_server: s3.S3Server,
    sshd_server: sshd.Sshd,
    slurm_conf: str,
    dirs: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_conf)
    state, work = dirs
    pool = slurm_pool(work, storage_section(s3_server, sshd_server, state))
    try:
        with EmbeddedScheduler(state, pool) as sched:
            wait_until(
                lambda: len(sched.workers("default/stage")) == 1, timeout=90, message="pilot"
            )
            trip = run_round_trip(sched, s3_server, sshd_server, "slurm")
            sched.call(sched.pools.remove("default/stage"))
            wait_until(_no_slurm_jobs, timeout=120, message="the pilot's job ended")
    finally:
        subprocess.run(["scancel", "--me"], check=False)
    trip.check()


def _no_slurm_jobs() -> bool:
    listed = subprocess.run(["squeue", "-h"], capture_output=True, text=True, check=False)
    return listed.returncode == 0 and not listed.stdout.strip()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_a_1_gib_output_streams_with_the_worker_rss_bounded(
    s3_server: s3.S3Server, sshd_server: sshd.Sshd, dirs: tuple[Path, Path]
) -> None:
    """1 GiB to S3 and back: the worker's peak RSS (VmHWM, reset once it is idle) stays
    within 100 MiB of its idle RSS."""
    state, _ = dirs
    pool = local_pool(storage_section(s3_server, sshd_server, state))
    bucket = s3_server.bucket("big")
    with EmbeddedScheduler(state, pool) as sched:
        assert sched.client is not None
        [worker] = wait_until(lambda: sched.workers("default/stage"), timeout=30)
        pid = sched.adapter("default/stage").pid_of(worker.id)
        # Warm: the first transfer imports the S3 client; that is start-up, not streaming.
        s3_server.put("big", "warm.txt", b"w")
        spec = worker_pb2.Task(name="warm", command="true")
        spec.input_files.add(source="s3://big/warm.txt", destination="warm.txt")
        [warm] = sched.client.submit(tasks_pb.TaskSubmission(spec=spec))
        wait_until(lambda: sched.client.status(warm) == worker_pb2.COMPLETED, timeout=30)
        idle = _status_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        spec = worker_pb2.Task(name="big", command="head -c 1G /dev/zero > big.bin")
        spec.output_files.add(source="big.bin", destination="s3://big/big.bin")
        [big] = sched.client.submit(tasks_pb.TaskSubmission(spec=spec))
        wait_until(lambda: sched.client.status(big) in harness.FINAL, timeout=120)
        assert sched.client.status(big) == worker_pb2.COMPLETED, sched.client.get(big)
        peak = _status_kib(pid, "VmHWM")
    stored = bucket / "big.bin"
    try:
        assert stored.stat().st_size == 1 << 30
        with open(stored, "rb") as handle:
            digest = hashlib.file_digest(handle, "md5").hexdigest()
        assert digest == "cd573cfaace07e7949bc0c46028904ff"  # 1 GiB of zeros
    finally:
        stored.unlink()
    print(f"worker RSS idle {idle / 1024:.0f} MiB, peak while streaming 1 GiB {peak / 1024:.0f}")
    assert peak - idle < 100 * 1024, (idle, peak)
