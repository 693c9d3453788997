"""Builds the batch/v1 Job that runs one worker on Kubernetes: a pure function of the pool spec.

One Job per worker, named `worker-<id>`: resources with requests equal to limits, an emptyDir
at the working directory, the worker's settings as flags and environment, restartPolicy Never,
owned by its WorkerPool (so deleting the pool deletes its Jobs), labelled so it can be found,
and compatible with the `restricted` pod security standard.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from vahana.pools import credentials

API_GROUP = "vahana.dev"
API_VERSION = "v1alpha1"
POOL_LABEL = "vahana.dev/pool"
WORKER_LABEL = "vahana.dev/worker-id"
MANAGED_BY = {"app.kubernetes.io/managed-by": "vahana", "app.kubernetes.io/name": "vahana-worker"}
WORKING_DIR = "/work"
WORKER_UID = 65532  # the non-root user of the image
TLS_DIR = "/etc/vahana/tls"
"""Where a worker Pod sees its pool's tlsSecretName (ca.crt, tls.crt, tls.key)."""
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


@dataclasses.dataclass(frozen=True)
class KubernetesPoolSpec:
    """What the Job builder needs of a WorkerPool of type kubernetes."""

    pool: str
    """The WorkerPool's name (a label value on its Jobs)."""
    namespace: str
    """The WorkerPool's namespace: its Jobs live there, so they can be owned by it."""
    pool_uid: str
    image: str
    server_address: str
    """How a worker Pod reaches the scheduler's gRPC port, e.g. vahana.vahana-system.svc:50051."""
    service_account: str = ""
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    image_pull_policy: str = ""
    cpu: str = "1"
    memory: str = "1Gi"
    gpus: int = 0
    tasks_per_worker: int = 1
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    heartbeat_interval_seconds: float = 30.0
    drain_timeout_seconds: float = 30.0
    command: Sequence[str] = ("vahana-worker",)
    pool_key: str = ""
    """The pool as the scheduler knows it (`<namespace>/<name>`); default: `pool`."""
    tls_secret: str = ""
    """Secret with the workers' mutual-TLS files (ca.crt, tls.crt, tls.key); empty: plaintext."""
    bootstrap_secret: str = ""
    """Secret with the pool's bootstrap secret (credentials.BOOTSTRAP_SECRET_KEY); empty: the
    scheduler requires none."""
    storage_env: Sequence[Mapping[str, Any]] = ()
    """The pool's storage settings as env entries (`stores.job_env`): Secrets by reference."""


def new_worker_id(pool: str) -> str:
    """`<pool>-<random>`, short enough that `worker-<id>` is a valid Job name (≤ 63)."""
    stem = _NOT_DNS.sub("-", pool.lower()).strip("-")[:40] or "pool"
    return f"{stem}-{secrets.token_hex(3)}"


def job_name(worker_id: str) -> str:
    return f"worker-{worker_id}"


def build_worker_job(spec: KubernetesPoolSpec, worker_id: str) -> dict[str, Any]:
    labels = {**MANAGED_BY, POOL_LABEL: spec.pool, WORKER_LABEL: worker_id}
    quantities: dict[str, Any] = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus:
        quantities["nvidia.com/gpu"] = spec.gpus
    args = [
        f"--server-address={spec.server_address}",
        f"--worker-id={worker_id}",
        f"--heartbeat-interval={spec.heartbeat_interval_seconds:g}s",
        f"--max-tasks={spec.tasks_per_worker}",
        f"--pool={spec.pool_key or spec.pool}",
        f"--cpu-cores={_cores(spec.cpu)}",
        f"--memory={spec.memory}",
        f"--gpus={spec.gpus}",
        f"--drain-timeout={spec.drain_timeout_seconds:g}s",
        *(f"--label={key}={value}" for key, value in sorted(spec.labels.items())),
    ]
    env: list[dict[str, Any]] = [
        {"name": "WORKING_DIR", "value": WORKING_DIR},
        {"name": "WORKER_ID", "value": worker_id},
        {"name": "SERVER_ADDRESS", "value": spec.server_address},
    ]
    mounts: list[dict[str, Any]] = [{"name": "work", "mountPath": WORKING_DIR}]
    volumes: list[dict[str, Any]] = [{"name": "work", "emptyDir": {}}]
    if spec.bootstrap_secret:
        key_ref = {"name": spec.bootstrap_secret, "key": credentials.BOOTSTRAP_SECRET_KEY}
        env.append({"name": credentials.BOOTSTRAP_ENV, "valueFrom": {"secretKeyRef": key_ref}})
    env.extend(dict(item) for item in spec.storage_env)
    if spec.tls_secret:
        args.extend(
            credentials.WorkerTls(
                f"{TLS_DIR}/ca.crt", f"{TLS_DIR}/tls.crt", f"{TLS_DIR}/tls.key"
            ).args()
        )
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": spec.tls_secret}})
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # A worker talks only to the scheduler, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": int(spec.drain_timeout_seconds) + 15,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": WORKER_UID,
            "runAsGroup": WORKER_UID,
            "fsGroup": WORKER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "worker",
                "image": spec.image,
                "command": list(spec.command),
                "args": args,
                "env": env,
                "resources": {"requests": dict(quantities), "limits": dict(quantities)},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if spec.image_pull_policy:
        pod_spec["containers"][0]["imagePullPolicy"] = spec.image_pull_policy
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in spec.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(worker_id),
            "namespace": spec.namespace,
            "labels": dict(labels),
            "ownerReferences": [_owner(spec)],
        },
        "spec": {
            # A worker that exits is replaced by the pool's reconciler, not by the Job.
            "backoffLimit": 0,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def _cores(cpu: str) -> str:
    text = str(cpu)
    if text.endswith("m"):
        return f"{int(text[:-1]) / 1000:g}"
    return text


def build_bootstrap_secret(spec: KubernetesPoolSpec, token: str) -> dict[str, Any]:
    """The Secret the pool's worker Pods read their bootstrap secret from, owned by the pool
    (deleting the WorkerPool deletes it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": spec.bootstrap_secret,
            "namespace": spec.namespace,
            "labels": {**MANAGED_BY, POOL_LABEL: spec.pool},
            "ownerReferences": [_owner(spec)],
        },
        "stringData": {credentials.BOOTSTRAP_SECRET_KEY: token},
    }


def _owner(spec: KubernetesPoolSpec) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "WorkerPool",
        "name": spec.pool,
        "uid": spec.pool_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
