"""Pools under the operator take their storage credentials from Secrets: a kubernetes pool's
worker Pods read them by secretKeyRef (the operator never does), a bare-metal pool's workers get
them from the operator. Each runs a task that reads from S3 and SFTP and writes to both."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import s3, sshd
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.test_operator import (  # noqa: F401 - fixtures
    apply,
    get,
    grant_when_asked,
    kubernetes_pool,
    operator,
    operator_kubeconfig,
    phases,
    pods,
    task_yaml,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.kubernetes


KEPT_BUCKET = "k8s-task-output"
"""Where the pools keep tasks' whole output (`spec.storage.taskOutput`)."""


def make_secrets(plane: ControlPlane, namespace: str, server: s3.S3Server, ssh: sshd.Sshd) -> None:
    plane.kubectl(
        "create", "secret", "generic", "store-s3", "-n", namespace,
        f"--from-literal=accessKeyId={server.access_key}",
        f"--from-literal=secretAccessKey={server.secret_key}",
    )  # fmt: skip
    plane.kubectl(
        "create", "secret", "generic", "store-ssh", "-n", namespace,
        f"--from-file=ssh-privatekey={ssh.key_file}",
        f"--from-file=known_hosts={ssh.known_hosts_file}",
    )  # fmt: skip


def storage(server: s3.S3Server, ssh: sshd.Sshd) -> dict[str, Any]:
    return {
        "s3": {"endpoint": server.endpoint, "credentialsSecret": "store-s3"},
        "sftp": {"user": ssh.user, "sshKeySecret": "store-ssh", "knownHostsSecret": "store-ssh"},
        "taskOutput": f"s3://{KEPT_BUCKET}/kept/",
    }


@dataclasses.dataclass(frozen=True)
class Staging:
    """A Task that reads one input from S3 and one from SFTP and writes its output to both."""

    task: dict[str, Any]
    bucket: Path
    remote: Path

    @property
    def name(self) -> str:
        return str(self.task["metadata"]["name"])

    def check_outputs(self) -> None:
        """Both outputs are the two inputs, byte for byte."""
        expected = (self.bucket / "a.bin").read_bytes() + (self.remote / "b.bin").read_bytes()
        assert (self.bucket / "out" / "both.bin").read_bytes() == expected
        assert (self.remote / "out" / "both.bin").read_bytes() == expected

    def check_kept(self, status: dict[str, Any], server: s3.S3Server) -> None:
        """Its whole output (more than the status's tail) is in the pool's storage, and the
        status names it."""
        task_id = status["taskId"]
        assert status["outputLog"] == f"s3://{KEPT_BUCKET}/kept/{task_id}/attempt-1.log", status
        kept = server.root / KEPT_BUCKET / "kept" / task_id / "attempt-1.log"
        assert kept.read_text() == "".join(f"{n}\n" for n in range(1, 20001))


def staging(server: s3.S3Server, ssh: sshd.Sshd, pool: str) -> Staging:
    """Puts the inputs in place (bucket and directory `k8s-<pool>`) and says the Task."""
    bucket = server.bucket(f"k8s-{pool}")
    server.bucket(KEPT_BUCKET)
    server.put(f"k8s-{pool}", "a.bin", os.urandom(1 << 20))
    remote = ssh.root / f"k8s-{pool}"
    remote.mkdir()
    (remote / "b.bin").write_bytes(os.urandom(1 << 19))
    sftp = f"sftp://127.0.0.1:{ssh.port}{remote}"
    task = task_yaml(
        f"stage-{pool}",
        "cat a.bin b.bin > both.bin; seq 1 20000",
        pool=pool,
        inputFiles=[
            {"source": f"s3://k8s-{pool}/a.bin", "destination": "a.bin"},
            {"source": f"{sftp}/b.bin", "destination": "b.bin"},
        ],
        outputFiles=[
            {"source": "both.bin", "destination": f"s3://k8s-{pool}/out/"},
            {"source": "both.bin", "destination": f"{sftp}/out/both.bin"},
        ],
    )
    return Staging(json.loads(task), bucket, remote)


def round_trip(
    plane: ControlPlane, namespace: str, server: s3.S3Server, ssh: sshd.Sshd, pool: str
) -> None:
    stage = staging(server, ssh, pool)
    apply(plane, namespace, json.dumps(stage.task))
    wait_until(
        lambda: phases(plane, namespace).get(stage.name) in ("Completed", "Failed"),
        timeout=90,
        message="the staging task ends",
    )
    task = get(plane, namespace, "task", stage.name)
    assert task["status"]["phase"] == "Completed", task["status"]
    stage.check_outputs()
    stage.check_kept(task["status"], server)


def test_a_kubernetes_pool_s_pods_read_the_storage_secrets_themselves(
    control_plane: ControlPlane,
    namespace: str,
    operator: Any,  # noqa: F811
    pods: FakeKubelet,  # noqa: F811
    s3_server: s3.S3Server,
    sshd_server: sshd.Sshd,
) -> None:
    make_secrets(control_plane, namespace, s3_server, sshd_server)
    pool = json.loads(kubernetes_pool("kstore", minimum=1, maximum=1))
    pool["spec"]["storage"] = storage(s3_server, sshd_server)
    apply(control_plane, namespace, json.dumps(pool))
    round_trip(control_plane, namespace, s3_server, sshd_server, "kstore")
    [job] = get(control_plane, namespace, "jobs")["items"]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not any(s3_server.secret_key in json.dumps(item) for item in env), "by reference"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["VAHANA_WORKER_S3_SECRET_ACCESS_KEY"] == {
        "name": "store-s3",
        "key": "secretAccessKey",
    }


def test_a_baremetal_pool_gets_its_storage_secrets_from_the_operator(
    control_plane: ControlPlane,
    namespace: str,
    operator: Any,  # noqa: F811
    s3_server: s3.S3Server,
    sshd_server: sshd.Sshd,
    tmp_path: Path,
) -> None:
    make_secrets(control_plane, namespace, s3_server, sshd_server)
    pool = {
        "apiVersion": "vahana.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": "mstore"},
        "spec": {
            "type": "baremetal",
            "minWorkers": 1,
            "maxWorkers": 1,
            "idleTimeout": "10m",
            "baremetal": {
                "hosts": [
                    {"host": "127.0.0.1", "port": sshd_server.port, "user": sshd_server.user}
                ],
                "sshKeySecret": "store-ssh",
                "knownHostsSecret": "store-ssh",
                "workingDir": str(tmp_path / "remote"),
            },
            "storage": storage(s3_server, sshd_server),
        },
    }
    apply(control_plane, namespace, json.dumps(pool))
    grant_when_asked(control_plane, namespace, "mstore", "rbac.readSshSecrets", ["get"])
    round_trip(control_plane, namespace, s3_server, sshd_server, "mstore")
