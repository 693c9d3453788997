"""ssh keys of slurm and baremetal WorkerPools, from Kubernetes Secrets to files.

In cluster mode a pool names Secrets (`sshKeySecret`: key `ssh-privatekey`, as in Secrets of
type kubernetes.io/ssh-auth; `knownHostsSecret`: key `known_hosts`) in its own namespace. The
operator writes them to files only it can read, under its state directory, and gives the
adapter the same `sshKeyFile` / `knownHostsFile` paths the embedded mode uses.
Reading Secrets needs the chart's `rbac.readSshSecrets`.

The storage Secrets of `spec.storage` (S3 credentials: keys `accessKeyId`, `secretAccessKey`;
SFTP: `ssh-privatekey`, `known_hosts`) are written the same way for local, slurm and baremetal
pools, whose workers get them from the operator. Kubernetes pools' worker Pods read them
themselves (`secretKeyRef`): the operator does not.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from vahana.pools import stores

SECTIONS = ("slurm", "baremetal")

_FILES = (
    ("sshKeySecret", "ssh-privatekey", "sshKeyFile", "id_key"),
    ("knownHostsSecret", "known_hosts", "knownHostsFile", "known_hosts"),
)


class SecretError(ValueError):
    """A named Secret cannot be read or lacks its key; the message says which and how to fix."""


def materialize(
    api: k8s.ApiClient, namespace: str, spec: Mapping[str, Any], directory: Path
) -> dict[str, Any]:
    """The spec with every Secret it names written to a file and named by path instead."""
    resolved = {key: value for key, value in spec.items()}
    for section_name in SECTIONS:
        section = spec.get(section_name)
        if not section:
            continue
        section = dict(section)
        for secret_field, data_key, file_field, file_name in _FILES:
            secret_name = section.get(secret_field)
            if not secret_name or section.get(file_field):
                continue
            field = f"spec.{section_name}.{secret_field}"
            data = _read(api, namespace, secret_name, data_key, field)
            path = directory / file_name
            _write_private(path, data)
            section[file_field] = str(path)
        resolved[section_name] = section
    if spec.get("type") != "kubernetes" and spec.get("storage"):
        resolved["storage"] = _storage_files(api, namespace, spec["storage"], directory)
    return resolved


def _storage_files(
    api: k8s.ApiClient, namespace: str, storage: Mapping[str, Any], directory: Path
) -> dict[str, Any]:
    # Sections are copied so that files can be filled in; plain values (taskOutput) as they are.
    resolved = {
        key: dict(value) if isinstance(value, Mapping) else value for key, value in storage.items()
    }
    s3 = resolved.get("s3") or {}
    secret_name = s3.get("credentialsSecret")
    if secret_name and not s3.get("credentialsFile"):
        field = "spec.storage.s3.credentialsSecret"
        lines = [
            f"{key}: {_read(api, namespace, secret_name, key, field).decode().strip()}"
            for key in stores.S3_KEYS
        ]
        path = directory / "s3-credentials"
        _write_private(path, "\n".join(lines).encode())
        s3["credentialsFile"] = str(path)
    sftp = resolved.get("sftp") or {}
    for secret_field, data_key, file_field, file_name in (
        ("sshKeySecret", stores.SSH_KEY, "sshKeyFile", "storage_key"),
        ("knownHostsSecret", stores.KNOWN_HOSTS, "knownHostsFile", "storage_known_hosts"),
    ):
        secret_name = sftp.get(secret_field)
        if secret_name and not sftp.get(file_field):
            field = f"spec.storage.sftp.{secret_field}"
            path = directory / file_name
            _write_private(path, _read(api, namespace, secret_name, data_key, field))
            sftp[file_field] = str(path)
    return resolved


def _read(api: k8s.ApiClient, namespace: str, name: str, key: str, field: str) -> bytes:
    try:
        secret = k8s.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 403:
            raise SecretError(
                f"{field}: the operator may not read Secret {namespace}/{name} — install the "
                "chart with rbac.readSshSecrets=true"
            ) from error
        if error.status == 404:
            raise SecretError(f"{field}: Secret {namespace}/{name} not found") from error
        raise SecretError(f"{field}: reading Secret {namespace}/{name}: {error.reason}") from error
    encoded = (secret.data or {}).get(key)
    if encoded is None:
        raise SecretError(f"{field}: Secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(encoded)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data if data.endswith(b"\n") else data + b"\n")
