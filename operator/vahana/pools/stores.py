"""A pool's storage settings (`spec.storage`) as the environment its workers read them from.

Tasks name only URLs (`s3://bucket/key`, `sftp://host/path`); where the S3 endpoint is and the
credentials for it and for SFTP hosts belong to the pool. Every pool type hands them to its
workers the same way, as `VAHANA_WORKER_*` variables (which the worker never passes on to
tasks): in the local workers' environment, exported by the SLURM and bare-metal scripts, and
as `secretKeyRef`s in Kubernetes Jobs. Credentials come from files on the scheduler's host
(embedded mode) or from Secrets the pool names, which the operator writes to such files first.
"""

from __future__ import annotations

import configparser
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vahana.core import validation

PREFIX = "VAHANA_WORKER_"
S3_KEYS = ("accessKeyId", "secretAccessKey")
"""Keys of an S3 credentials Secret."""
SSH_KEY, KNOWN_HOSTS = "ssh-privatekey", "known_hosts"
"""Keys of the SFTP Secrets (as in bare-metal pools' Secrets)."""


def _read(path: str, field: str, read: Callable[[str], str]) -> str:
    try:
        return read(path)
    except OSError as error:
        raise ValueError(f"{field}: cannot read {path!r}: {error.strerror or error}") from error


def parse_s3_credentials(text: str, field: str) -> tuple[str, str]:
    """(access key id, secret) from an AWS shared-credentials file (`aws_access_key_id = …`,
    `aws_secret_access_key = …`, under [default] or alone) or from `accessKeyId: …` /
    `secretAccessKey: …` lines, the keys of the Secret form."""
    parser = configparser.ConfigParser(delimiters=("=", ":"), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text if text.lstrip().startswith("[") else "[default]\n" + text)
    except configparser.Error as error:
        raise ValueError(f"{field}: not a credentials file: {error}") from error
    section = parser["default"] if parser.has_section("default") else None
    if section is None and parser.sections():
        section = parser[parser.sections()[0]]
    values = {k: v.strip() for k, v in (section or {}).items()}
    key = values.get("aws_access_key_id") or values.get("accessKeyId") or ""
    secret = values.get("aws_secret_access_key") or values.get("secretAccessKey") or ""
    if not key or not secret:
        raise ValueError(
            f"{field}: needs aws_access_key_id and aws_secret_access_key (or accessKeyId and "
            "secretAccessKey)"
        )
    return key, secret


def worker_env(
    spec: Mapping[str, Any], *, read: Callable[[str], str] = lambda p: Path(p).read_text()
) -> dict[str, str]:
    """The variables that give a pool's workers its `spec.storage`; ValueError names the field.

    `spec.storage.s3`: endpoint, region, credentialsFile (or credentialsSecret, written to a
    file by the operator); `spec.storage.sftp`: user, sshKeyFile / sshKeySecret,
    knownHostsFile / knownHostsSecret; `spec.storage.taskOutput`: where workers keep each
    task's whole output.
    """
    storage = spec.get("storage") or {}
    env: dict[str, str] = {}
    s3 = storage.get("s3") or {}
    if s3:
        endpoint = str(s3.get("endpoint", ""))
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise ValueError(
                f"spec.storage.s3.endpoint: {endpoint!r} must start with http:// or https://"
            )
        if endpoint:
            env[PREFIX + "S3_ENDPOINT"] = endpoint
        if s3.get("region"):
            env[PREFIX + "S3_REGION"] = str(s3["region"])
        path = s3.get("credentialsFile", "")
        if s3.get("credentialsSecret") and not path:
            raise ValueError(
                "spec.storage.s3.credentialsSecret: Secrets are read by the operator in a "
                "cluster; without one, give spec.storage.s3.credentialsFile"
            )
        if path:
            field = "spec.storage.s3.credentialsFile"
            key, secret = parse_s3_credentials(_read(path, field, read), field)
            env[PREFIX + "S3_ACCESS_KEY_ID"] = key
            env[PREFIX + "S3_SECRET_ACCESS_KEY"] = secret
    sftp = storage.get("sftp") or {}
    if sftp:
        if sftp.get("user"):
            env[PREFIX + "SFTP_USER"] = str(sftp["user"])
        for secret_field, file_field, name in (
            ("sshKeySecret", "sshKeyFile", "SFTP_KEY"),
            ("knownHostsSecret", "knownHostsFile", "SFTP_KNOWN_HOSTS"),
        ):
            path = sftp.get(file_field, "")
            if sftp.get(secret_field) and not path:
                raise ValueError(
                    f"spec.storage.sftp.{secret_field}: Secrets are read by the operator in a "
                    f"cluster; without one, give spec.storage.sftp.{file_field}"
                )
            if path:
                # The content, not the path: the worker may run on another host.
                env[PREFIX + name] = _read(path, f"spec.storage.sftp.{file_field}", read)
    task_output = str(storage.get("taskOutput") or "")
    if task_output:
        env[PREFIX + "TASK_OUTPUT_URL"] = checked_task_output(task_output)
    return env


def checked_task_output(url: str) -> str:
    """`spec.storage.taskOutput` as given; ValueError names the field and the form."""
    problem = validation.storage_url_problem(url)
    if problem:
        raise ValueError(
            f"spec.storage.taskOutput: {url!r} must be s3://bucket/prefix/ or "
            f"sftp://host/path/ ({problem})"
        )
    return url


def job_env(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The same settings as env entries of a worker Pod: the Secrets the pool names are
    `secretKeyRef`s, so no credential is written into the Job; files (embedded mode) are
    read as `worker_env` does."""
    storage = spec.get("storage") or {}
    s3 = dict(storage.get("s3") or {})
    sftp = dict(storage.get("sftp") or {})
    refs: list[dict[str, Any]] = []
    if s3.get("credentialsSecret"):
        name = s3.pop("credentialsSecret")
        s3.pop("credentialsFile", None)  # the Secret itself wins over the operator's copy
        for env_name, key in zip(
            ("S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"), S3_KEYS, strict=True
        ):
            refs.append(_secret_ref(PREFIX + env_name, name, key))
    for secret_field, file_field, env_name, key in (
        ("sshKeySecret", "sshKeyFile", "SFTP_KEY", SSH_KEY),
        ("knownHostsSecret", "knownHostsFile", "SFTP_KNOWN_HOSTS", KNOWN_HOSTS),
    ):
        if sftp.get(secret_field):
            refs.append(_secret_ref(PREFIX + env_name, sftp.pop(secret_field), key))
            sftp.pop(file_field, None)
    plain = worker_env(
        {"storage": {"s3": s3, "sftp": sftp, "taskOutput": storage.get("taskOutput", "")}}
    )
    return [{"name": k, "value": v} for k, v in sorted(plain.items())] + refs


def _secret_ref(env_name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": env_name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
