"""Inputs from and outputs to storage through the executor: a real S3 API (rclone serve s3) and
a real sshd's SFTP on 127.0.0.1, byte-identical files, and failures that name the URL, the
cause and whose fault it is."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from vahana_worker import executor, staging, storage

from tests.fixtures import s3, sshd

pytestmark = pytest.mark.integration


def stores(server: s3.S3Server, ssh: sshd.Sshd, **changes: object) -> storage.StorageConfig:
    config = storage.StorageConfig(
        s3_endpoint=server.endpoint,
        s3_access_key_id=server.access_key,
        s3_secret_access_key=server.secret_key,
        sftp_user=ssh.user,
        sftp_key_file=ssh.key_file,
        sftp_known_hosts_file=ssh.known_hosts_file,
        backoff=0.05,
        timeout=60,
    )
    return storage.StorageConfig(**{**config.__dict__, **changes})  # type: ignore[arg-type]


def run_task(
    tmp_path: Path,
    command: str,
    config: storage.StorageConfig,
    *,
    inputs: tuple[tuple[str, str], ...] = (),
    outputs: tuple[tuple[str, str], ...] = (),
) -> executor.Result:
    spec = executor.TaskSpec(
        task_id="store", attempt=1, command=command, timeout=60, inputs=inputs, outputs=outputs
    )
    return executor.TaskRun(
        spec, working_dir=tmp_path / "work", output_limit=4096, stores=config
    ).run()


def sftp_url(ssh: sshd.Sshd, path: Path) -> str:
    return f"sftp://127.0.0.1:{ssh.port}{path}"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inputs_from_s3_and_sftp_and_outputs_to_both_arrive_byte_identical(
    tmp_path: Path, s3_server: s3.S3Server, sshd_server: sshd.Sshd
) -> None:
    bucket = s3_server.bucket("in-and-out")
    s3_server.put("in-and-out", "data/a.bin", os.urandom(3 << 20))
    remote = sshd_server.root / "store"
    remote.mkdir(exist_ok=True)
    (remote / "b.bin").write_bytes(os.urandom(1 << 20))
    command = (
        "cat a.bin b.bin > joined.bin; mkdir -p res/deep; echo x > res/deep/x.txt; "
        "echo 1 > one.csv; echo 2 > two.csv"
    )
    result = run_task(
        tmp_path,
        command,
        stores(s3_server, sshd_server),
        inputs=(
            ("s3://in-and-out/data/a.bin", ""),
            (sftp_url(sshd_server, remote / "b.bin"), ""),
        ),
        outputs=(
            ("joined.bin", "s3://in-and-out/out/joined.bin"),
            ("joined.bin", sftp_url(sshd_server, remote / "out") + "/"),
            ("res", "s3://in-and-out/out/"),
            ("*.csv", sftp_url(sshd_server, remote / "csv")),
        ),
    )
    assert result.outcome is executor.Outcome.COMPLETED, result.message
    expected = (bucket / "data" / "a.bin").read_bytes() + (remote / "b.bin").read_bytes()
    assert (bucket / "out" / "joined.bin").read_bytes() == expected
    assert (remote / "out" / "joined.bin").read_bytes() == expected
    assert (bucket / "out" / "res" / "deep" / "x.txt").read_text() == "x\n"
    assert sorted(p.name for p in (remote / "csv").iterdir()) == ["one.csv", "two.csv"]
    assert "s3://in-and-out/out/joined.bin" in result.output_files
    assert not list(remote.rglob(".*.part")), "no partial file is left behind"


@pytest.mark.parametrize(
    ("case", "cause", "kind"),
    [
        ("missing s3", "not found", executor.FailureKind.STAGING),
        ("missing sftp", "not found", executor.FailureKind.STAGING),
        ("denied bucket", "access denied", executor.FailureKind.STAGING),
        ("unreachable s3", "unreachable", executor.FailureKind.INFRASTRUCTURE),
        ("unreachable sftp", "unreachable", executor.FailureKind.INFRASTRUCTURE),
        ("dot-dot key", "'..' is not allowed", executor.FailureKind.STAGING),
    ],
)
def test_a_failed_input_names_the_url_the_cause_and_whose_fault_it_is(
    tmp_path: Path,
    s3_server: s3.S3Server,
    sshd_server: sshd.Sshd,
    case: str,
    cause: str,
    kind: executor.FailureKind,
) -> None:
    s3_server.bucket("fails")
    closed = f"sftp://127.0.0.1:{_closed_port()}/x/y.bin"
    url, config = {
        "missing s3": ("s3://fails/nothing-here.bin", stores(s3_server, sshd_server)),
        "missing sftp": (
            sftp_url(sshd_server, sshd_server.root / "nothing-here.bin"),
            stores(s3_server, sshd_server),
        ),
        "denied bucket": (
            "s3://fails/x.bin",
            stores(s3_server, sshd_server, s3_secret_access_key="wrong"),
        ),
        "unreachable s3": (
            "s3://fails/x.bin",
            stores(s3_server, sshd_server, s3_endpoint=f"http://127.0.0.1:{_closed_port()}"),
        ),
        "unreachable sftp": (closed, stores(s3_server, sshd_server)),
        "dot-dot key": ("s3://fails/a/../../etc/passwd", stores(s3_server, sshd_server)),
    }[case]
    marker = tmp_path / "ran"
    started = time.monotonic()
    result = run_task(tmp_path, f"touch {marker}", config, inputs=((url, ""),))
    assert result.outcome is executor.Outcome.FAILED
    assert url in result.message and cause in result.message, result.message
    assert result.failure_kind is kind
    assert not marker.exists(), "the command must not run without its inputs"
    assert time.monotonic() - started < 15, "retries are bounded"


def test_outputs_the_task_did_not_write_or_that_leave_the_sandbox_are_refused(
    tmp_path: Path, s3_server: s3.S3Server, sshd_server: sshd.Sshd
) -> None:
    s3_server.bucket("refused")
    config = stores(s3_server, sshd_server)
    for source, cause in (
        ("never-written.txt", "the task did not write it"),
        ("*.none", "no file in the sandbox matches"),
        ("/etc/hostname", "absolute paths are not allowed"),
        ("../escape.txt", "'..' is not allowed"),
    ):
        result = run_task(tmp_path, "true", config, outputs=((source, "s3://refused/x/"),))
        assert result.outcome is executor.Outcome.FAILED, source
        assert result.failure_kind is executor.FailureKind.STAGING, source
        assert cause in result.message and repr(source) in result.message, result.message
    assert not any((s3_server.root / "refused").iterdir())


def test_a_transient_failure_is_retried_with_backoff(
    tmp_path: Path,
    s3_server: s3.S3Server,
    sshd_server: sshd.Sshd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first two tries go to an endpoint where nothing listens (as while the store
    restarts), the third to the store: the transfer backs off, doubling, then succeeds."""
    s3_server.put("flaky", "in.txt", b"finally\n")
    waits: list[float] = []
    good = stores(s3_server, sshd_server, attempts=4, backoff=0.1)
    dead = stores(s3_server, sshd_server, s3_endpoint=f"http://127.0.0.1:{_closed_port()}")
    calls = iter([dead, dead, good])
    original = storage._s3_download

    def flaky(location: storage.Location, partial: Path, config: storage.StorageConfig) -> int:
        return original(location, partial, next(calls))

    monkeypatch.setattr(storage, "_s3_download", flaky)
    size = storage.download("s3://flaky/in.txt", tmp_path / "in.txt", good, sleep=waits.append)
    assert size == 8 and (tmp_path / "in.txt").read_text() == "finally\n"
    assert waits == [0.1, 0.2]


def test_staging_error_for_a_bad_url_names_it(tmp_path: Path) -> None:
    sandbox = tmp_path / "sb"
    sandbox.mkdir()
    with pytest.raises(staging.StagingError, match="expected s3://bucket/key"):
        staging.stage_input(sandbox, "s3://user@bucket:9/key", "")


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
