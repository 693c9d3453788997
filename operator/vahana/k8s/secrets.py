"""ssh keys of slurm and baremetal WorkerPools, from Kubernetes Secrets to files.

In cluster mode a pool names Secrets (`sshKeySecret`: key `ssh-privatekey`, as in Secrets of
type kubernetes.io/ssh-auth; `knownHostsSecret`: key `known_hosts`) in its own namespace. The
operator writes them to files only it can read, under its state directory, and gives the
adapter the same `sshKeyFile` / `knownHostsFile` paths the embedded mode uses.
Reading Secrets needs the chart's `rbac.readSshSecrets`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

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
