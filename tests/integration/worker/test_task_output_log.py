"""A task attempt's whole output kept in the pool's storage (`--task-output-url`, the pool's
`spec.storage.taskOutput`), against a real S3 API (rclone serve s3) and a real sshd: the spool
or the tail as it is, a cut output with its note, a store that cannot be reached named; and
through a real scheduler and worker, the status naming the object and `vahana logs` too."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from vahana.proto import worker_pb2 as pb
from vahana_worker import outputlog, storage

from tests.fixtures import s3, sshd
from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.integration.test_cli import vahana
from tests.integration.worker.test_storage_transfers import stores
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def keep(
    tmp_path: Path, config: storage.StorageConfig, *, prefix: str, task_id: str, **given: object
) -> str:
    """outputlog.keep with this module's defaults: attempt 1, no spool, a 1 MiB cap."""
    arguments: dict[str, object] = {
        "attempt": 1, "spool": None, "tail": "", "cap": 1 << 20, **given
    }  # fmt: skip
    return outputlog.keep(
        prefix=prefix,
        task_id=task_id,
        scratch=tmp_path / "scratch",
        stores=config,
        **arguments,  # type: ignore[arg-type]
    )


def test_a_spooled_output_is_kept_whole_under_the_prefix(
    tmp_path: Path, s3_server: s3.S3Server, sshd_server: sshd.Sshd
) -> None:
    bucket = s3_server.bucket("kept-spool")
    spool = tmp_path / "spool.out"
    spool.write_bytes(b"line\n" * 50_000)
    config = stores(s3_server, sshd_server)
    url = keep(
        tmp_path, config, prefix="s3://kept-spool/runs/", task_id="ns/sweep[3]", attempt=2,
        spool=spool, tail="e\n",
    )  # fmt: skip
    assert url == "s3://kept-spool/runs/ns/sweep_3_/attempt-2.log"
    assert (
        bucket / "runs" / "ns" / "sweep_3_" / "attempt-2.log"
    ).read_bytes() == b"line\n" * 50_000


def test_a_short_output_is_its_tail_and_sftp_works_as_s3(
    tmp_path: Path, s3_server: s3.S3Server, sshd_server: sshd.Sshd
) -> None:
    remote = sshd_server.root / "kept-tail"
    prefix = f"sftp://127.0.0.1:{sshd_server.port}{remote}/"
    url = keep(
        tmp_path, stores(s3_server, sshd_server), prefix=prefix, task_id="hello",
        spool=tmp_path / "never-written.out", tail="hello\n",
    )  # fmt: skip
    assert url.endswith(f"{remote}/hello/attempt-1.log")
    assert (remote / "hello" / "attempt-1.log").read_text() == "hello\n"
    assert not (tmp_path / "scratch").exists()


def test_an_output_the_cap_cut_ends_with_the_note_and_its_tail(
    tmp_path: Path, s3_server: s3.S3Server, sshd_server: sshd.Sshd
) -> None:
    bucket = s3_server.bucket("kept-cut")
    spool = tmp_path / "spool.out"
    spool.write_bytes(b"x" * 4096)  # the spool filled the cap
    config = stores(s3_server, sshd_server)
    keep(tmp_path, config, prefix="s3://kept-cut/", task_id="loud", spool=spool,
         tail="the end\n", cap=4096)  # fmt: skip
    kept = (bucket / "loud" / "attempt-1.log").read_bytes()
    assert (
        kept == b"x" * 4096 + b"\n[vahana: output cut at 4096 bytes; its last 8 bytes:]\nthe end\n"
    )


def test_an_unreachable_store_is_an_infrastructure_error(
    tmp_path: Path, s3_server: s3.S3Server, sshd_server: sshd.Sshd
) -> None:
    config = stores(s3_server, sshd_server, s3_endpoint=f"http://127.0.0.1:{harness.free_port()}")
    with pytest.raises(storage.TransferError) as raised:
        keep(tmp_path, config, prefix="s3://kept/", task_id="t", tail="x\n")
    assert raised.value.infrastructure


def storage_worker(
    start_worker: WorkerFactory,
    server: s3.S3Server,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    prefix: str,
) -> None:
    # Credentials only ever come from the environment (the pool sets it); the worker inherits it.
    monkeypatch.setenv("VAHANA_WORKER_S3_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("VAHANA_WORKER_S3_SECRET_ACCESS_KEY", server.secret_key)
    start_worker(
        name,
        extra=(
            f"--s3-endpoint={server.endpoint}",
            f"--task-output-url={prefix}",
            "--transfer-backoff=0.05s",
        ),
    )


def test_a_worker_keeps_each_output_and_the_status_and_logs_name_it(
    client: harness.Client,
    scheduler: harness.SchedulerProcess,
    start_worker: WorkerFactory,
    s3_server: s3.S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_server.bucket("worker-kept")
    storage_worker(start_worker, s3_server, monkeypatch, "keeper", "s3://worker-kept/out/")
    [long, short] = client.submit(
        harness.submission("seq 1 40000", "long-output"),
        harness.submission("echo short", "short-output"),
    )
    for task in (long, short):
        wait_until(lambda t=task: client.status(t) in harness.FINAL, timeout=60, message=task)
        assert client.status(task) == pb.COMPLETED, client.get(task)
    printed = subprocess.run(["seq", "1", "40000"], capture_output=True, check=True).stdout
    info = client.get(long)
    assert info.output_log == f"s3://worker-kept/out/{long}/attempt-1.log"
    assert (bucket / "out" / long / "attempt-1.log").read_bytes() == printed
    assert (bucket / "out" / short / "attempt-1.log").read_bytes() == b"short\n"

    shown = vahana("logs", "long-output", f"--server={scheduler.address}")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(printed.decode())  # the scheduler's copy, whole
    assert f"(whole output kept at {info.output_log})" in shown.stdout


def test_an_output_that_cannot_be_kept_leaves_the_outcome_and_says_why(
    client: harness.Client,
    start_worker: WorkerFactory,
    s3_server: s3.S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage_worker(start_worker, s3_server, monkeypatch, "no-bucket", "s3://no-such-bucket/out/")
    [task] = client.submit(harness.submission("echo fine", "unkept"))
    wait_until(lambda: client.status(task) in harness.FINAL, timeout=60, message="unkept")
    info = client.get(task)
    assert info.status == pb.COMPLETED and info.output_tail == "fine\n", info
    assert not info.output_log
    assert f"whole output not kept at s3://no-such-bucket/out/{task}/attempt-1.log" in info.message
