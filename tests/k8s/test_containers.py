"""The user's path with real containers: `helm install` the chart with our image, the operator
in its container under the chart's ServiceAccount, worker Pods as containers, every pool type.

A control plane of this module's own (with the Deployment, ReplicaSet and PersistentVolume
controllers, so the chart's Deployment gets its Pod and its claim a volume) and a container
kubelet (tests/k8s/podman_kubelet.py) for the release's and the users' namespaces. Every
container is on the host's network: the chart's ports are free ports of this host.

The default install also runs a kubernetes pool with storage (S3 and SFTP credentials from
Secrets, read by the worker containers themselves).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import s3 as s3_fixture
from tests.fixtures import sshd as sshd_fixture
from tests.k8s.controlplane import ControlPlane, free_port
from tests.k8s.podman_kubelet import ContainerKubelet
from tests.k8s.test_helm import CHART, EXAMPLES, RELEASE, SYSTEM, helm, helm_bin  # noqa: F401
from tests.k8s.test_pool_storage import make_secrets, staging, storage
from tests.waiting import wait_until

pytestmark = pytest.mark.kubernetes

WORK = "work"
FINAL = ("Completed", "Failed")
EXAMPLE_TASKS = ("hello.yaml", "failing.yaml")


@dataclasses.dataclass
class Cluster:
    plane: ControlPlane
    kubelet: ContainerKubelet
    image: str
    helm: Path
    state: Path
    """The hostPath behind the chart's PersistentVolumeClaim."""

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, **kwargs)

    def objects(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        return list(self.plane.read(namespace, kind)["items"])

    def apply(self, namespace: str, *documents: dict[str, Any]) -> None:
        text = "\n---\n".join(json.dumps(doc) for doc in documents)
        self.kubectl("apply", "-n", namespace, "-f", "-", input=text)


@pytest.fixture(scope="module")
def cluster(helm_bin: Path, vahana_image: str) -> Iterator[Cluster]:  # noqa: F811
    plane = ControlPlane().start()
    kubelet = ContainerKubelet(plane, [SYSTEM, WORK])
    try:
        kubelet.start()
        plane.kubectl("create", "namespace", WORK)
        wait_until(
            lambda: plane.kubectl("get", "sa", "default", "-n", WORK, check=False).returncode == 0,
            timeout=30, message="the default ServiceAccount of the work namespace",
        )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="vh-pv-") as state:
            # What a storage provisioner would offer the chart's claim: a volume on this node.
            plane.kubectl("apply", "-f", "-", input=json.dumps({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": "vahana-state"},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "hostPath": {"path": state}},
            }))  # fmt: skip
            yield Cluster(plane, kubelet, vahana_image, helm_bin, Path(state))
    finally:
        kubelet.stop()
        plane.stop()
    assert not kubelet.containers(), "containers left behind"


@dataclasses.dataclass(frozen=True)
class Ports:
    grpc: int = dataclasses.field(default_factory=free_port)
    metrics: int = dataclasses.field(default_factory=free_port)
    download: int = dataclasses.field(default_factory=free_port)
    ui: int = dataclasses.field(default_factory=free_port)


def install(cluster: Cluster, ports: Ports, *values: str) -> None:
    """`helm install` with our image; returns once the operator's Pod is Ready."""
    repository, tag = cluster.image.rsplit(":", 1)
    helm(
        cluster.helm, "install", RELEASE, str(CHART), "-n", SYSTEM, "--create-namespace",
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never",
        "--set", f"grpc.port={ports.grpc}", "--set", f"metrics.port={ports.metrics}",
        "--set", f"remotePools.downloadPort={ports.download}", "--set", f"ui.port={ports.ui}",
        "--set", "operator.heartbeatIntervalSeconds=2",
        *values, "--wait", "--timeout", "3m",
        kubeconfig=cluster.plane.kubeconfig,
    )  # fmt: skip


def uninstall_leaves_nothing(cluster: Cluster) -> None:
    """Deletes what a test left of its pools (their workers go with them), then `helm uninstall`:
    no container, Pod, Job or Worker may be left."""
    cluster.kubectl("delete", "workerpools,tasks", "--all", "-n", WORK, "--wait=false")
    wait_until(lambda: not cluster.objects("workers", WORK), timeout=120,
               message="the pools' workers gone")  # fmt: skip
    helm(cluster.helm, "uninstall", RELEASE, "-n", SYSTEM, "--wait", "--timeout", "2m",
         kubeconfig=cluster.plane.kubeconfig)  # fmt: skip

    def left() -> dict[str, Any]:
        found = {
            "containers": [c["Names"] for c in cluster.kubelet.containers(running_only=True)],
            "pods": [p["metadata"]["name"] for ns in (SYSTEM, WORK)
                     for p in cluster.objects("pods", ns)],
            "jobs": [j["metadata"]["name"] for j in cluster.objects("jobs", WORK)],
            "workers": [w["metadata"]["name"] for w in cluster.objects("workers", WORK)],
        }  # fmt: skip
        return {kind: names for kind, names in found.items() if names}

    try:
        wait_until(lambda: not left(), timeout=60, message="nothing left after helm uninstall")
    except AssertionError as error:
        raise AssertionError(f"{error}: {left()}") from error


def operator_container(cluster: Cluster) -> dict[str, Any]:
    (pod,) = cluster.objects("pods", SYSTEM)
    name = cluster.kubelet.container_of(pod["metadata"]["name"], "operator")
    out = subprocess.run(["podman", "inspect", name], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout)[0])


def example_pool(image: str, **spec: Any) -> dict[str, Any]:
    pool = yaml.safe_load((EXAMPLES / "workerpool-kubernetes.yaml").read_text())
    pool["spec"]["kubernetes"] |= {"image": image, "imagePullPolicy": "Never"}
    pool["spec"] |= {"maxWorkers": 2, "heartbeatInterval": "2s"} | spec  # 2 cores here
    return dict(pool)


def example_tasks() -> list[dict[str, Any]]:
    return [
        doc
        for name in EXAMPLE_TASKS
        for doc in yaml.safe_load_all((EXAMPLES / name).read_text())
        if doc and doc["kind"] == "Task"
    ]


def wait_final(
    cluster: Cluster, names: set[str], timeout: float = 240
) -> dict[str, dict[str, Any]]:
    def final() -> dict[str, dict[str, Any]]:
        found = {
            t["metadata"]["name"]: t.get("status") or {} for t in cluster.objects("tasks", WORK)
        }
        done = all(found.get(n, {}).get("phase") in FINAL for n in names)
        return found if done else {}

    try:
        return wait_until(final, timeout=timeout, message=f"every Task of {sorted(names)} final")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{diagnosis(cluster)}") from error


def diagnosis(cluster: Cluster) -> str:
    """What a user would look at: pool statuses, task phases, the operator's last log lines."""
    pools = {p["metadata"]["name"]: p.get("status") for p in cluster.objects("workerpools", WORK)}
    tasks = {
        t["metadata"]["name"]: (t.get("status") or {}).get("phase")
        for t in cluster.objects("tasks", WORK)
    }
    operator = [p["metadata"]["name"] for p in cluster.objects("pods", SYSTEM)]
    log = cluster.kubelet.log_of(operator[0]) if operator else ""
    return f"pools: {json.dumps(pools, indent=1)}\ntasks: {tasks}\noperator log:\n{log[-4000:]}"


def run_the_kubernetes_pool(
    cluster: Cluster, pool: dict[str, Any], *extra_tasks: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The example pool and Tasks (and `extra_tasks`, which must complete): every Task ends
    as it should, on worker containers that `kubectl get workers` lists with their metrics.
    Returns the statuses of those Tasks."""
    tasks = [*example_tasks(), *extra_tasks]
    names = {t["metadata"]["name"] for t in tasks}
    cluster.apply(WORK, pool, *tasks)
    done = {name: s for name, s in wait_final(cluster, names).items() if name in names}
    failed = {name for name, status in done.items() if status["phase"] == "Failed"}
    assert failed == {"exits-three"}, done
    assert done["exits-three"].get("exitCode") == 3
    # The workers ran as containers of the Jobs' Pods, from our image, as the Job says.
    pods = cluster.objects("pods", WORK)
    assert pods and all(p["metadata"]["name"].startswith("worker-") for p in pods)
    ran_on = {status.get("worker") for status in done.values()}
    assert ran_on <= {p["metadata"]["labels"]["vahana.dev/worker-id"] for p in pods}

    def listed() -> str:
        out = cluster.kubectl("get", "workers", "-n", WORK).stdout
        rows = [line.split() for line in out.splitlines()[1:]]
        # ID POOL STATUS ACTIVE CPU MEMORY LAST-HEARTBEAT AGE: metrics came with heartbeats.
        return out if rows and all(len(row) >= 8 and row[4] != "<none>" for row in rows) else ""

    wait_until(listed, timeout=60, message="kubectl get workers with metrics")
    return done


def delete_the_pool(cluster: Cluster, pool: dict[str, Any]) -> None:
    """Deleting the pool stops its containers and removes its Jobs and Workers; then the
    Tasks go."""
    cluster.kubectl("delete", "workerpool", pool["metadata"]["name"], "-n", WORK)

    def pool_gone() -> bool:
        running = [
            c for c in cluster.kubelet.containers(running_only=True)
            if c["Labels"].get("io.kubernetes.pod.name", "").startswith("worker-")
        ]  # fmt: skip
        return not (running or cluster.objects("jobs", WORK) or cluster.objects("workers", WORK))

    wait_until(pool_gone, timeout=120, message="the pool's containers, Jobs and Workers gone")
    cluster.kubectl("delete", "tasks", "--all", "-n", WORK)


def test_helm_install_runs_the_operator_and_worker_pods_as_containers(
    cluster: Cluster, s3_server: s3_fixture.S3Server, sshd_server: sshd_fixture.Sshd
) -> None:
    """The default install: the operator's container as the chart says; the example Tasks and
    a storage round trip (S3 and SFTP, credentials from Secrets) on a kubernetes pool; nothing
    left after `helm uninstall`."""
    ports = Ports()
    install(cluster, ports)
    try:
        operator = operator_container(cluster)
        # The chart's Pod as the node ran it: restricted, and with only its ServiceAccount.
        assert operator["Config"]["User"] == "65532:65532"
        assert operator["HostConfig"]["ReadonlyRootfs"] is True
        env = dict(item.split("=", 1) for item in operator["Config"]["Env"])
        assert "KUBECONFIG" not in env
        assert env["VAHANA_POOLS_DISTRIBUTION_PORT"] == str(ports.download)
        mounts = {m["Destination"] for m in operator["Mounts"]}
        assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts
        # The pool's storage: its worker containers read the Secrets by secretKeyRef.
        make_secrets(cluster.plane, WORK, s3_server, sshd_server)
        pool = example_pool(cluster.image, storage=storage(s3_server, sshd_server))
        stage = staging(s3_server, sshd_server, pool["metadata"]["name"])
        run_the_kubernetes_pool(cluster, pool, stage.task)
        secrets_by_reference(cluster, s3_server)
        delete_the_pool(cluster, pool)
        stage.check_outputs()  # what the workers wrote outlives them
        (pod,) = cluster.objects("pods", SYSTEM)
        log = cluster.kubelet.log_of(pod["metadata"]["name"])
        assert "Forbidden" not in log, log[-3000:]
    finally:
        uninstall_leaves_nothing(cluster)
    # The claim is kept on uninstall (helm.sh/resource-policy: keep): the store outlives it.
    assert (cluster.state / "vahana.db").exists()


STORAGE_REFS = {
    "VAHANA_WORKER_S3_ACCESS_KEY_ID": "store-s3",
    "VAHANA_WORKER_S3_SECRET_ACCESS_KEY": "store-s3",
    "VAHANA_WORKER_SFTP_KEY": "store-ssh",
    "VAHANA_WORKER_SFTP_KNOWN_HOSTS": "store-ssh",
}
"""The worker env the pool's storage Secrets (tests.k8s.test_pool_storage.make_secrets) fill."""


def secrets_by_reference(cluster: Cluster, s3_server: s3_fixture.S3Server) -> None:
    """The pool's Jobs name the storage Secrets (`secretKeyRef`) and hold no credential; the
    kubelet put them into the worker containers, which run as uid 65532."""
    jobs = cluster.objects("jobs", WORK)
    assert jobs
    for job in jobs:
        assert s3_server.secret_key not in json.dumps(job), "credentials by reference only"
        (container,) = job["spec"]["template"]["spec"]["containers"]
        refs = {
            item["name"]: item["valueFrom"]["secretKeyRef"]["name"]
            for item in container["env"] if "secretKeyRef" in item.get("valueFrom", {})
        }  # fmt: skip
        assert STORAGE_REFS.items() <= refs.items(), refs
    for pod in cluster.objects("pods", WORK):
        name = cluster.kubelet.container_of(pod["metadata"]["name"])
        inspected = subprocess.run(["podman", "inspect", name], capture_output=True, text=True)
        config = json.loads(inspected.stdout)[0]["Config"]
        assert config["User"].split(":")[0] == "65532"
        assert f"VAHANA_WORKER_S3_SECRET_ACCESS_KEY={s3_server.secret_key}" in config["Env"]


def make_certificates(directory: Path) -> Path:
    hosts = f"{RELEASE}.{SYSTEM}.svc,localhost,127.0.0.1"
    subprocess.run(
        [sys.executable, "-m", "vahana.cli.main", "certs", "--out", str(directory),
         "--hosts", hosts, "--workers", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return directory


def secret(name: str, files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "data": {key: base64.b64encode(value).decode() for key, value in files.items()},
    }  # fmt: skip


def test_helm_install_with_mutual_tls_and_tokens_runs_the_worker_pods(
    cluster: Cluster, tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path / "certs")
    read = lambda name: (certs / name).read_bytes()  # noqa: E731
    cluster.kubectl("create", "namespace", SYSTEM, check=False)
    cluster.apply(
        SYSTEM,
        secret(
            "vahana-server-tls", {"tls.crt": read("server.pem"), "tls.key": read("server-key.pem")}
        ),
        secret("vahana-client-ca", {"ca.crt": read("ca.pem")}),
        secret("vahana-bootstrap", {"bootstrap-token": secrets.token_hex(16).encode()}),
    )
    worker = {"tls.crt": read("worker-1.pem"), "tls.key": read("worker-1-key.pem")}
    cluster.apply(WORK, secret("worker-tls", {"ca.crt": read("ca.pem"), **worker}))
    install(
        cluster, Ports(),
        "--set", "tls.serverSecretName=vahana-server-tls",
        "--set", "tls.clientCASecretName=vahana-client-ca",
        "--set", "auth.bootstrapSecretName=vahana-bootstrap",
    )  # fmt: skip
    try:
        args = operator_container(cluster)["Config"]["Cmd"]
        assert "--insecure" not in args and any(a.startswith("--tls-cert-file") for a in args)
        pool = example_pool(cluster.image)
        pool["spec"]["kubernetes"]["tlsSecretName"] = "worker-tls"
        run_the_kubernetes_pool(cluster, pool)
        delete_the_pool(cluster, pool)
    finally:
        uninstall_leaves_nothing(cluster)


@pytest.fixture(scope="module")
def slurm_login(slurm_conf: str) -> Iterator[sshd_fixture.Sshd]:
    """An ssh login node of the SLURM fixture: its sessions see the cluster's SLURM_CONF."""
    with sshd_fixture.running_sshd({"SLURM_CONF": slurm_conf}) as login:
        yield login


def ssh_secrets(prefix: str, server: sshd_fixture.Sshd) -> list[dict[str, Any]]:
    return [
        secret(f"{prefix}-ssh", {"ssh-privatekey": Path(server.key_file).read_bytes()}),
        secret(
            f"{prefix}-known-hosts", {"known_hosts": Path(server.known_hosts_file).read_bytes()}
        ),
    ]


def remote_pool(name: str, kind: str, section: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "vahana.dev/v1alpha1", "kind": "WorkerPool", "metadata": {"name": name},
        "spec": {
            "type": kind, "minWorkers": 1, "maxWorkers": 1, "tasksPerWorker": 2,
            "walltime": "10m", "heartbeatInterval": "2s",
            "resources": {"cpu": "1", "memory": "256Mi"},
            kind: section
            | {"sshKeySecret": f"{name}-ssh", "knownHostsSecret": f"{name}-known-hosts"},
        },
    }  # fmt: skip


def test_slurm_and_baremetal_pools_run_from_the_operator_container(
    cluster: Cluster,
    sshd_server: sshd_fixture.Sshd,
    slurm_login: sshd_fixture.Sshd,
    slurm_conf: str,
    tmp_path: Path,
) -> None:
    ports = Ports()
    install(
        cluster, ports, "--set", "rbac.readSshSecrets=true",
        # Pilots run on the hosts, outside the cluster: the address they reach it at.
        "--set", f"remotePools.workerServerAddress=127.0.0.1:{ports.grpc}",
    )  # fmt: skip
    pools = {
        "lab": remote_pool("lab", "baremetal", {
            "hosts": [{"host": "127.0.0.1", "port": sshd_server.port, "user": sshd_server.user}],
            "workingDir": str(tmp_path / "baremetal"),
        }),
        "hpc": remote_pool("hpc", "slurm", {
            "partition": "debug", "loginHost": "127.0.0.1", "sshPort": slurm_login.port,
            "sshUser": slurm_login.user, "workingDir": str(tmp_path / "slurm"),
        }),
    }  # fmt: skip
    tasks = [
        {"apiVersion": "vahana.dev/v1alpha1", "kind": "Task",
         "metadata": {"name": f"{pool}-{n}"},
         "spec": {"pool": pool, "command": "echo on $(hostname)"}}
        for pool in pools for n in range(3)
    ]  # fmt: skip
    try:
        cluster.apply(
            WORK, *ssh_secrets("lab", sshd_server), *ssh_secrets("hpc", slurm_login),
            *pools.values(), *tasks,
        )  # fmt: skip
        done = wait_final(cluster, {t["metadata"]["name"] for t in tasks}, timeout=300)
        assert {name: s["phase"] for name, s in done.items()} == dict.fromkeys(
            (t["metadata"]["name"] for t in tasks), "Completed"
        ), done
        for name, status in done.items():
            assert status["pool"] == f"{WORK}/{name.split('-')[0]}", (name, status)
        cluster.kubectl("delete", "workerpools", "--all", "-n", WORK)

        def gone() -> bool:
            queue = subprocess.run(
                ["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=True,
                env={"SLURM_CONF": slurm_conf, "PATH": "/usr/bin:/bin"},
            ).stdout.split()  # fmt: skip
            return not cluster.objects("workers", WORK) and not [j for j in queue if "hpc" in j]

        wait_until(gone, timeout=120, message="the remote pools' workers and SLURM jobs gone")
        cluster.kubectl("delete", "tasks", "--all", "-n", WORK)
    finally:
        uninstall_leaves_nothing(cluster)
