"""The user's path with real containers: `helm install` the chart with our image, the operator
in its container under the chart's ServiceAccount, worker Pods as containers, every pool type.

A control plane of this module's own (with the Deployment, ReplicaSet and PersistentVolume
controllers, so the chart's Deployment gets its Pod and its claim a volume, and the
EndpointSlice controller, so its Service gets the Ready Pod as endpoint) and a container
kubelet (tests/k8s/podman_kubelet.py, which also answers `kubectl logs`) for the release's
and the users' namespaces. Every container is on the host's network: the chart's ports are
free ports of this host.

The default install also runs a kubernetes pool with storage (S3 and SFTP credentials from
Secrets, read by the worker containers themselves) and every `kubectl` command of
docs/troubleshooting.md, as written there.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from vahana.k8s import resources

from tests.fixtures import s3 as s3_fixture
from tests.fixtures import sshd as sshd_fixture
from tests.k8s.controlplane import CONTROLLERS, REPO, ControlPlane, free_port
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
    plane = ControlPlane(controllers=CONTROLLERS + ",endpointslice").start()
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
    wait_until(
        lambda: not (cluster.objects("workers", WORK) or cluster.objects("workerpools", WORK)),
        timeout=120, message="the pools and their workers gone",
    )  # fmt: skip
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
    cluster: Cluster, s3_server: s3_fixture.S3Server, sshd_server: sshd_fixture.Sshd,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The default install: the operator's container as the chart says; the example Tasks and
    a storage round trip (S3 and SFTP, credentials from Secrets) on a kubernetes pool; every
    kubectl line of docs/troubleshooting.md; nothing left after `helm uninstall`."""
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
        apply_a_task_that_waits(cluster)
        done = run_the_kubernetes_pool(cluster, pool, stage.task)
        secrets_by_reference(cluster, s3_server)
        its_reason_follows_the_workers(cluster)
        scene = Scene.of(cluster, pool, ports)
        run_the_troubleshooting_lines(cluster, scene, tmp_path, when=POOL_RUNNING)
        delete_the_pool(cluster, pool)
        stage.check_outputs()  # what the workers wrote outlives them
        stage.check_kept(done[stage.name], s3_server)  # and so does the task's whole output
        (pod,) = cluster.objects("pods", SYSTEM)
        log = cluster.kubelet.log_of(pod["metadata"]["name"])
        assert "Forbidden" not in log, log[-3000:]
        left_behind_by_a_gone_operator(cluster, scene, tmp_path)
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


# -- docs/troubleshooting.md's kubectl lines ------------------------------------------------------
DOC = REPO / "docs" / "troubleshooting.md"
POOL_RUNNING, OPERATOR_GONE = "while the pool runs", "after the operator is gone"
WAITS: dict[str, Any] = {
    "apiVersion": "vahana.dev/v1alpha1", "kind": "Task", "metadata": {"name": "too-big"},
    "spec": {"command": "true", "resources": {"cpu": "4"}},
}  # fmt: skip
"""A Task that stays Pending with a reason: the example pool's workers have 1 cpu."""
ORPHAN = "left-behind"
"""The Task deleted after the operator went: its finalizer is removed by hand."""


@dataclasses.dataclass(frozen=True)
class Scene:
    """What the page's placeholders stand for, and what its commands must show."""

    pool: str
    worker: str
    """<id>: a live worker of the pool."""
    operator_pod: str
    lease_holder: str
    """The identity the leader's log says it holds the Lease as."""
    grpc_endpoint: str
    """The Ready leader's address and gRPC port, as the Service's endpoint."""

    @classmethod
    def of(cls, cluster: Cluster, pool: dict[str, Any], ports: Ports) -> Scene:
        workers = {w["metadata"]["name"] for w in cluster.objects("workers", WORK)}
        pods = [p for p in cluster.objects("pods", WORK) if p["status"].get("phase") == "Running"]
        worker = next(
            p["metadata"]["labels"]["vahana.dev/worker-id"] for p in pods
            if p["metadata"]["labels"]["vahana.dev/worker-id"] in workers
        )  # fmt: skip
        (operator,) = cluster.objects("pods", SYSTEM)
        name = operator["metadata"]["name"]
        held = re.search(r"leader: holding lease \S+ as (\S+)", cluster.kubelet.log_of(name))
        assert held, cluster.kubelet.log_of(name)[-3000:]
        return cls(
            pool=pool["metadata"]["name"], worker=worker, operator_pod=name,
            lease_holder=held.group(1), grpc_endpoint=f"{cluster.kubelet.pod_ip}:{ports.grpc}",
        )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Line:
    """How the test runs one kubectl line of the page, and what its output must contain."""

    shows: Callable[[Scene], Sequence[str]]
    task: str = ""
    """The Task that NAME stands for."""
    when: str = POOL_RUNNING


LINES: dict[str, Line] = {
    # First look
    "kubectl -n NS get tasks,workerpools,workers -o wide": Line(
        lambda s: [
            "task.vahana.dev/hello",
            "Completed",
            "task.vahana.dev/exits-three",
            "Failed",
            "no worker can run it",
            f"workerpool.vahana.dev/{s.pool}",
            f"worker.vahana.dev/{s.worker}",
        ]
    ),
    "kubectl -n vahana-system get pods -l app.kubernetes.io/name=vahana": Line(
        lambda s: [s.operator_pod, "1/1", "Running"]
    ),
    "kubectl -n vahana-system logs deploy/vahana --tail=200": Line(
        lambda s: ["vahana.scheduling.scheduler accepted task_id=", "name=too-big"]
    ),
    "kubectl -n NS get events --field-selector involvedObject.kind=Task": Line(
        lambda s: ["task/hello", "task/exits-three", "exit code 3", "task/too-big"]
    ),
    # The operator is not Ready
    "kubectl -n vahana-system get lease vahana-operator -o yaml": Line(
        lambda s: [f"holderIdentity: {s.lease_holder}"]
    ),
    # A worker does not register
    "kubectl -n NS get workerpool POOL -o wide": Line(
        lambda s: ["DESIRED", "READY", "ERROR", s.pool]
    ),
    "kubectl -n NS get workerpool POOL -o jsonpath='{.status.conditions}'": Line(
        lambda s: ['"type":"Ready"']
    ),
    "kubectl -n NS get jobs,pods -l vahana.dev/pool=POOL": Line(
        lambda s: [f"job.batch/worker-{s.worker}", f"pod/worker-{s.worker}-"]
    ),
    "kubectl -n NS logs job/worker-<id>": Line(
        lambda s: [f"msg=registered worker_id={s.worker}", f"server={RELEASE}.{SYSTEM}.svc:"]
    ),
    "kubectl -n vahana-system describe service vahana": Line(
        lambda s: ["Endpoints:", s.grpc_endpoint]  # its port is the grpc port alone
    ),
    "kubectl get workers": Line(lambda s: [s.worker, "AVAILABLE"]),
    # Tasks stay Pending
    "kubectl -n NS get tasks -o wide": Line(
        lambda s: ["too-big", "Pending", "no worker can run it: needs 4 cpu"]
    ),
    "kubectl -n NS get task NAME -o jsonpath='{.status.pendingReason}{\"\\n\"}'": Line(
        lambda s: ["no worker can run it: needs 4 cpu, the largest worker has 1\n"], task="too-big"
    ),
    "kubectl -n NS get workerpools": Line(lambda s: [s.pool]),
    # A worker is UNHEALTHY
    "kubectl -n NS get workers": Line(lambda s: [s.worker, "AVAILABLE", "LAST HEARTBEAT"]),
    "kubectl -n NS get pods -l vahana.dev/worker-id=<id>": Line(
        lambda s: [f"worker-{s.worker}-", "Running"]
    ),
    # Stale attempts; a task failed or was rerun
    "kubectl -n NS get task NAME -o jsonpath='{.status.attempt} {.status.message}{\"\\n\"}'": Line(
        # Attempt 2 after its one task retry, or later if a loaded node also lost a worker.
        lambda s: [" command exited with code 3"],
        task="exits-three",
    ),
    "kubectl -n NS get task NAME -o jsonpath='{.status.exitCode} {.status.message}{\"\\n\"}'": Line(
        lambda s: ["3 command exited with code 3"], task="exits-three"
    ),
    "kubectl -n NS get task NAME -o jsonpath='{.status.outputTail}'": Line(
        lambda s: ["about to fail"], task="exits-three"
    ),
    # RBAC
    "kubectl auth can-i --list --as=system:serviceaccount:vahana-system:vahana -n NS": Line(
        lambda s: ["tasks.vahana.dev", "jobs.batch", "workers.vahana.dev"]
    ),
    "kubectl auth can-i create jobs.batch --as=system:serviceaccount:vahana-system:vahana -n NS": (
        Line(lambda s: ["yes"])
    ),
    "kubectl auth can-i update leases.coordination.k8s.io "
    "--as=system:serviceaccount:vahana-system:vahana -n vahana-system": Line(lambda s: ["yes"]),
    "kubectl get clusterrolebinding vahana-operator -o yaml": Line(
        lambda s: ["kind: ServiceAccount", "name: vahana", "namespace: vahana-system"]
    ),
    # Deleting a Task hangs
    'kubectl patch task NAME -n NS --type=merge -p \'{"metadata":{"finalizers":[]}}\'': Line(
        lambda s: [f"task.vahana.dev/{ORPHAN} patched"], task=ORPHAN, when=OPERATOR_GONE
    ),
}
"""Every kubectl line of the page this test runs, as the page writes it."""

NOT_RUN = {
    "kubectl -n vahana-system port-forward svc/vahana 50051": (
        "port-forward needs the kubelet's streaming endpoint (SPDY or WebSocket), which the "
        "container kubelet does not serve; the `vahana --server` lines it prepares for are run "
        "against a scheduler by tests/integration/test_troubleshooting_commands.py"
    ),
}
"""The page's kubectl lines this test does not run, and why."""


def waiting_reason(cluster: Cluster) -> str:
    found = cluster.plane.read(WORK, "task", WAITS["metadata"]["name"]) or {}
    return str(found.get("status", {}).get("pendingReason", ""))


def apply_a_task_that_waits(cluster: Cluster) -> None:
    """Applies WAITS before any worker exists: its first reason is that no worker came yet."""
    cluster.apply(WORK, WAITS)
    wait_until(
        lambda: "no worker registered" in waiting_reason(cluster),
        timeout=60,
        message="the waiting Task's first reason",
    )


def its_reason_follows_the_workers(cluster: Cluster) -> None:
    """Once the pool's workers registered, WAITS's reason says why none of them can run it:
    the operator looks at waiting Tasks' reasons again when workers come, not only when the
    Task changes."""
    wait_until(
        lambda: waiting_reason(cluster).startswith("no worker can run it"),
        timeout=60,
        message="the waiting Task's reason",
    )


def doc_kubectl_lines() -> list[str]:
    """Every kubectl command of the page: the lines of its code blocks (without comments) and
    the inline code in its text and tables."""
    text = DOC.read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for b in blocks for line in b.splitlines()]
    inline = re.findall(r"`(kubectl [^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return list(dict.fromkeys([line for line in lines if line.startswith("kubectl ")] + inline))


def test_every_kubectl_line_of_the_troubleshooting_page_is_run_or_excused() -> None:
    """The page and LINES / NOT_RUN say the same lines: a kubectl line added to the page (or
    changed) fails here until this module runs it, or says why it cannot."""
    lines = doc_kubectl_lines()
    assert len(lines) >= 20, lines
    unknown = [line for line in lines if line not in LINES and line not in NOT_RUN]
    assert not unknown, f"kubectl lines of {DOC.name} this module does not run: {unknown}"
    gone = [line for line in [*LINES, *NOT_RUN] if line not in lines]
    assert not gone, f"lines no longer on {DOC.name}: {gone}"


def filled(text: str, scene: Scene, task: str) -> list[str]:
    """The words of a line of the page, its placeholders replaced (NAME by `task`)."""
    assert task or not re.search(r"\bNAME\b", text), f"which Task is NAME in {text}?"
    for placeholder, value in (("NS", WORK), ("POOL", scene.pool), ("NAME", task)):
        text = re.sub(rf"\b{placeholder}\b", value, text)
    return shlex.split(text.replace("<id>", scene.worker))


def run_the_troubleshooting_lines(cluster: Cluster, scene: Scene, tmp: Path, *, when: str) -> None:
    """Runs the page's kubectl lines meant for `when`, placeholders filled in, as a user whose
    kubeconfig context's namespace is NS: each exits 0 and shows what the page says."""
    kubeconfig = cluster.plane.write_kubeconfig(
        tmp / "user-kubeconfig", user="admin", token=cluster.plane.token, namespace=WORK
    )
    for text in doc_kubectl_lines():
        line = LINES.get(text)
        if line is None or line.when != when:
            continue
        words = filled(text, scene, line.task)
        done = cluster.plane.kubectl(*words[1:], kubeconfig=kubeconfig, check=False)
        shown = f"{text}\n  ran as {shlex.join(words)}: exit {done.returncode}\n"
        shown += done.stdout + done.stderr
        assert done.returncode == 0, shown
        missing = [item for item in line.shows(scene) if item not in done.stdout]
        assert not missing, f"{shown}\n  does not show {missing}"


def left_behind_by_a_gone_operator(cluster: Cluster, scene: Scene, tmp: Path) -> None:
    """The page's last resort: a Task deleted after the operator went keeps its finalizer, and
    `kubectl patch … finalizers` lets the deletion finish."""
    orphan = {
        "apiVersion": "vahana.dev/v1alpha1", "kind": "Task", "metadata": {"name": ORPHAN},
        "spec": {"command": "true"},
    }  # fmt: skip

    def finalizers() -> list[str]:
        found = cluster.plane.read(WORK, "task", ORPHAN) or {}
        return list(found.get("metadata", {}).get("finalizers", []))

    cluster.apply(WORK, orphan)
    wait_until(lambda: resources.FINALIZER in finalizers(), timeout=60,
               message="the operator's finalizer on the Task")  # fmt: skip
    cluster.kubectl("-n", SYSTEM, "scale", "deployment", RELEASE, "--replicas=0")
    wait_until(lambda: not cluster.objects("pods", SYSTEM), timeout=120,
               message="the operator's Pod gone")  # fmt: skip
    cluster.kubectl("-n", WORK, "delete", "task", ORPHAN, "--wait=false")
    assert finalizers() == [resources.FINALIZER]  # nobody left to remove it
    run_the_troubleshooting_lines(cluster, scene, tmp, when=OPERATOR_GONE)
    wait_until(lambda: cluster.plane.read(WORK, "task", ORPHAN) is None, timeout=30,
               message="the Task deleted once its finalizer is gone")  # fmt: skip


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
