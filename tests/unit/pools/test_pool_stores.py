"""A pool's spec.storage as its workers' environment: credentials read from files, every
problem naming the field, and values quoted where a script exports them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from vahana.pools import scripts, stores

LAUNCH = scripts.Launch(
    worker_id="w1",
    pool="default/p",
    server_address="sched:50051",
    binary_url="http://sched/worker.pyz",
    binary_sha256="0" * 64,
    working_dir="/tmp/w",
)


def test_s3_and_sftp_settings_become_worker_variables(tmp_path: Path) -> None:
    (tmp_path / "creds").write_text(
        "[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n"
    )
    (tmp_path / "key").write_text("-----BEGIN KEY-----\nabc\n-----END KEY-----\n")
    (tmp_path / "hosts").write_text("[h]:2222 ssh-ed25519 AAAA\n")
    spec = {
        "storage": {
            "s3": {
                "endpoint": "http://s3:9000",
                "region": "eu-1",
                "credentialsFile": str(tmp_path / "creds"),
            },
            "sftp": {
                "user": "data",
                "sshKeyFile": str(tmp_path / "key"),
                "knownHostsFile": str(tmp_path / "hosts"),
            },
        }
    }
    assert stores.worker_env(spec) == {
        "VAHANA_WORKER_S3_ENDPOINT": "http://s3:9000",
        "VAHANA_WORKER_S3_REGION": "eu-1",
        "VAHANA_WORKER_S3_ACCESS_KEY_ID": "AK",
        "VAHANA_WORKER_S3_SECRET_ACCESS_KEY": "SK",
        "VAHANA_WORKER_SFTP_USER": "data",
        "VAHANA_WORKER_SFTP_KEY": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
        "VAHANA_WORKER_SFTP_KNOWN_HOSTS": "[h]:2222 ssh-ed25519 AAAA\n",
    }
    assert stores.worker_env({}) == {}


def test_task_output_reaches_every_pool_type_s_workers() -> None:
    spec = {"storage": {"taskOutput": "s3://logs/vahana/", "s3": {"credentialsSecret": "c"}}}
    variable = {"name": "VAHANA_WORKER_TASK_OUTPUT_URL", "value": "s3://logs/vahana/"}
    assert variable in stores.job_env(spec)  # kubernetes Jobs
    plain = {"storage": {"taskOutput": "sftp://store.lab/data/logs/"}}
    assert stores.worker_env(plain) == {  # local processes, SLURM and bare-metal scripts
        "VAHANA_WORKER_TASK_OUTPUT_URL": "sftp://store.lab/data/logs/"
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aws_access_key_id=A\naws_secret_access_key=S\n", ("A", "S")),
        ("[prod]\naws_access_key_id = A\naws_secret_access_key = S\n", ("A", "S")),
        ("accessKeyId: A\nsecretAccessKey: S\n", ("A", "S")),
    ],
)
def test_credentials_files_in_the_aws_and_the_secret_layout(
    text: str, expected: tuple[str, str]
) -> None:
    assert stores.parse_s3_credentials(text, "f") == expected


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"s3": {"endpoint": "s3.example:9000"}}, "spec.storage.s3.endpoint: 's3.example:9000'"),
        ({"s3": {"credentialsFile": "/nonexistent"}}, "spec.storage.s3.credentialsFile: cannot"),
        ({"s3": {"credentialsSecret": "c"}}, "give spec.storage.s3.credentialsFile"),
        ({"sftp": {"sshKeySecret": "k"}}, "give spec.storage.sftp.sshKeyFile"),
        ({"sftp": {"knownHostsFile": "/nonexistent"}}, "spec.storage.sftp.knownHostsFile"),
        ({"taskOutput": "/var/logs"}, "spec.storage.taskOutput: '/var/logs' must be s3://"),
        ({"taskOutput": "s3://b/../up/"}, "spec.storage.taskOutput: 's3://b/../up/' must be"),
        ({"taskOutput": "sftp:///path/"}, "spec.storage.taskOutput: 'sftp:///path/'"),
    ],
)
def test_bad_storage_settings_name_the_field(storage: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        stores.worker_env({"storage": storage})


def test_an_incomplete_credentials_file_says_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "creds").write_text("aws_access_key_id = A\n")
    with pytest.raises(ValueError, match="needs aws_access_key_id and aws_secret_access_key"):
        stores.worker_env({"storage": {"s3": {"credentialsFile": str(tmp_path / "creds")}}})


def test_scripts_export_storage_values_as_data() -> None:
    hostile = "x'; touch /tmp/pwned; echo '\n$(id)"
    launch = scripts.Launch(
        **{**LAUNCH.__dict__, "storage_env": {"VAHANA_WORKER_SFTP_KEY": hostile}}
    )
    prologue = "\n".join(scripts._prologue(launch)[:8])
    exported = subprocess.run(
        [
            "bash",
            "-c",
            prologue.split("\nWORKER_SHA256")[0] + '\nprintf %s "$VAHANA_WORKER_SFTP_KEY"',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert exported == hostile
