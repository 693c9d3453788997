"""The container kubelet applies what a node applies: env, volumes, the service-account token,
security context, limits, probes, grace and exit codes — checked from inside the containers —
and answers `kubectl logs` through the API server as a node's kubelet does."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.k8s.controlplane import ControlPlane, free_port
from tests.k8s.podman_kubelet import ContainerKubelet
from tests.k8s.test_fake_kubelet import create, get
from tests.waiting import wait_until

pytestmark = pytest.mark.kubernetes


@pytest.fixture
def node(
    control_plane: ControlPlane, namespace: str, vahana_image: str
) -> Iterator[ContainerKubelet]:
    kubelet = ContainerKubelet(control_plane, [namespace])
    kubelet.start()
    yield kubelet
    kubelet.stop()
    assert not kubelet.containers(), "the kubelet left containers behind"


def pod(name: str, image: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image, "command": ["sh", "-c", script]}
    container |= spec.pop("container", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"restartPolicy": "Never", "containers": [container]} | spec,
    }


def pod_status(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    found = get(plane, f"/api/v1/namespaces/{namespace}/pods/{name}")
    return (found or {}).get("status", {})


def phase_is(plane: ControlPlane, namespace: str, name: str, *phases: str) -> dict[str, Any]:
    status = pod_status(plane, namespace, name)
    return status if status.get("phase") in phases else {}


def test_env_volumes_token_security_context_and_limits_reach_the_container(
    control_plane: ControlPlane, namespace: str, node: ContainerKubelet, vahana_image: str
) -> None:
    create(control_plane, namespace, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"password": "s3cret", "key.pem": "KEY"},
    })  # fmt: skip
    create(control_plane, namespace, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
        "data": {"colour": "blue"},
    })  # fmt: skip
    review = (
        "import json, os, ssl, urllib.request as u; d = '/var/run/secrets/kubernetes.io/"
        "serviceaccount/'; t = open(d + 'token').read(); "
        "url = 'https://%s:%s/apis/authentication.k8s.io/v1/selfsubjectreviews' % ("
        "os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT']); "
        "r = u.Request(url, data=json.dumps({'apiVersion': 'authentication.k8s.io/v1', "
        "'kind': 'SelfSubjectReview'}).encode(), headers={'Authorization': 'Bearer ' + t, "
        "'Content-Type': 'application/json'}); "
        "ctx = ssl.create_default_context(cafile=d + 'ca.crt'); "
        "print('user', json.load(u.urlopen(r, context=ctx))['status']['userInfo']['username'])"
    )
    script = "; ".join([
        "echo id $(id -u):$(id -g) groups $(id -G)",
        "echo env $POD_NAME $POD_NS $PASSWORD $COLOUR",
        "echo secret $(cat /etc/creds/password) $(stat -c %a:%g /etc/creds/key.pem)",
        "echo scratch > /scratch/file && echo emptydir $(stat -c %g /scratch/file)",
        "(echo x > /rootfs-file) 2>/dev/null || echo rootfs read-only",
        "echo caps $(grep CapEff /proc/self/status | cut -f2)",
        "echo nnp $(grep NoNewPrivs /proc/self/status | cut -f2)",
        "echo memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)",
        f"python3 -c \"{review}\"",
    ])  # fmt: skip
    create(control_plane, namespace, pod("inside", vahana_image, script, container={
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "COLOUR",
             "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "colour"}}},
        ],
        "volumeMounts": [
            {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
            {"name": "scratch", "mountPath": "/scratch"},
        ],
        "resources": {"limits": {"memory": "256Mi", "cpu": "500m"}},
        "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }, securityContext={
        "runAsNonRoot": True, "runAsUser": 1234, "runAsGroup": 2345, "fsGroup": 3456,
    }, volumes=[
        {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "scratch", "emptyDir": {}},
    ]))  # fmt: skip
    status = wait_until(
        lambda: phase_is(control_plane, namespace, "inside", "Succeeded", "Failed"),
        timeout=60, message="the pod to end",
    )  # fmt: skip
    output = node.log_of("inside")
    assert status["phase"] == "Succeeded", output
    lines = dict(line.split(" ", 1) for line in output.splitlines() if " " in line)
    assert lines["id"].startswith("1234:2345 groups") and "3456" in lines["id"]
    assert lines["env"] == f"inside {namespace} s3cret blue"
    assert lines["secret"] == "s3cret 440:3456"  # defaultMode, plus group read for fsGroup
    assert lines["emptydir"] == "3456"  # setgid directory of the fsGroup
    assert lines["rootfs"] == "read-only"
    assert lines["caps"] == "0000000000000000"
    assert lines["nnp"] == "1"
    assert lines["memory"] == str(256 * 1024 * 1024)
    assert lines["user"] == f"system:serviceaccount:{namespace}:default"
    (container,) = status["containerStatuses"]
    assert container["state"]["terminated"]["exitCode"] == 0


def test_exit_codes_non_root_refusal_and_missing_images_show_on_the_status(
    control_plane: ControlPlane, namespace: str, node: ContainerKubelet, vahana_image: str
) -> None:
    create(control_plane, namespace, pod("exits", vahana_image, "echo bye; exit 3"))
    create(control_plane, namespace, pod("as-root", vahana_image, "true", securityContext={
        "runAsNonRoot": True, "runAsUser": 0,
    }))  # fmt: skip
    create(control_plane, namespace, pod("no-image", "localhost/absent:none", "true"))
    failed = wait_until(
        lambda: phase_is(control_plane, namespace, "exits", "Failed"), timeout=60,
        message="the exiting pod to fail",
    )  # fmt: skip
    terminated = failed["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")

    def waiting(name: str) -> dict[str, Any]:
        statuses = pod_status(control_plane, namespace, name).get("containerStatuses", [])
        state = statuses[0]["state"].get("waiting", {}) if statuses else {}
        return state if state.get("reason", "ContainerCreating") != "ContainerCreating" else {}

    refused = wait_until(lambda: waiting("as-root"), timeout=30, message="the refusal")
    assert refused["reason"] == "CreateContainerConfigError"
    assert "non-root" in refused["message"]
    missing = wait_until(lambda: waiting("no-image"), timeout=30, message="the missing image")
    assert missing["reason"] == "ErrImageNeverPull"
    assert pod_status(control_plane, namespace, "as-root")["phase"] == "Pending"


def test_readiness_follows_the_probe_and_deletion_sends_sigterm_then_waits_the_grace(
    control_plane: ControlPlane, namespace: str, node: ContainerKubelet, vahana_image: str
) -> None:
    port = free_port()
    # Serves HTTP once /tmp/serve exists; on SIGTERM says so and exits 0 after 1 s.
    script = (
        "trap 'echo got SIGTERM; sleep 1; exit 0' TERM; "
        f"(while [ ! -e /tmp/serve ]; do sleep 0.1; done; exec python3 -m http.server {port} "
        "--bind 127.0.0.1 --directory /tmp) & while :; do sleep 0.1; done"
    )
    create(control_plane, namespace, pod("server", vahana_image, script, container={
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        "ports": [{"name": "http", "containerPort": port}],
    }, terminationGracePeriodSeconds=20, restartPolicy="Always"))  # fmt: skip

    def condition(kind: str) -> str:
        found = pod_status(control_plane, namespace, "server").get("conditions", [])
        return next((c["status"] for c in found if c["type"] == kind), "")

    wait_until(lambda: pod_status(control_plane, namespace, "server").get("phase") == "Running",
               timeout=60, message="the server to run")  # fmt: skip
    assert condition("Ready") == "False"
    name = node.container_of("server")
    subprocess.run(["podman", "exec", name, "touch", "/tmp/serve"], check=True)
    wait_until(lambda: condition("Ready") == "True", timeout=30, message="Ready")
    control_plane.rest.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/server")
    wait_until(
        lambda: get(control_plane, f"/api/v1/namespaces/{namespace}/pods/server") is None,
        timeout=60, message="the pod to be deleted",
    )  # fmt: skip
    assert not node.containers(running_only=True)
    exited = [c for c in node.containers() if c["Names"][0] == name]
    assert exited and exited[0]["ExitCode"] == 0, exited  # it exited by itself on SIGTERM
    assert "got SIGTERM" in node.log_of("server")


def test_kubectl_logs_reads_the_containers_and_env_waits_for_its_secret(
    control_plane: ControlPlane, namespace: str, node: ContainerKubelet, vahana_image: str
) -> None:
    """`kubectl logs` (with --follow, --previous, --tail, --timestamps, --limit-bytes) reaches
    the node's kubelet endpoint; a container whose env names a Secret that does not exist yet
    waits in CreateContainerConfigError and starts once it does."""
    script = (
        "if [ ! -e /scratch/ran ]; then touch /scratch/ran; echo first run; echo on stderr >&2; "
        "exit 1; fi; echo second run $WORD; echo line 1; echo line 2; echo line 3; "
        "while [ ! -e /scratch/go ]; do sleep 0.1; done; echo bye"
    )
    word = {"name": "WORD", "valueFrom": {"secretKeyRef": {"name": "later", "key": "word"}}}
    create(control_plane, namespace, pod("talker", vahana_image, script, container={
        "env": [word], "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    }, restartPolicy="OnFailure", volumes=[{"name": "scratch", "emptyDir": {}}]))  # fmt: skip

    def logs(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return control_plane.kubectl("logs", "-n", namespace, "talker", *args, check=check)

    def container() -> dict[str, Any]:
        statuses = pod_status(control_plane, namespace, "talker").get("containerStatuses", [])
        return dict(statuses[0]) if statuses else {}

    waiting = wait_until(
        lambda: container().get("state", {}).get("waiting", {}).get("message"), timeout=30,
        message="the container waiting for its Secret",
    )  # fmt: skip
    assert waiting == 'secret "later" not found'
    refused = logs(check=False)
    assert refused.returncode == 1, refused
    assert "is waiting to start: CreateContainerConfigError" in refused.stderr
    create(control_plane, namespace, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"},
        "stringData": {"word": "hello"},
    })  # fmt: skip
    wait_until(
        lambda: container().get("restartCount") == 1 and "running" in container()["state"],
        timeout=60, message="the second run",
    )  # fmt: skip
    follow = subprocess.Popen(
        [str(control_plane.assets / "kubectl"), "--kubeconfig", str(control_plane.kubeconfig),
         "logs", "-n", namespace, "talker", "--follow"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []

    def read() -> None:
        assert follow.stdout is not None
        for line in follow.stdout:
            seen.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: "line 3\n" in seen, timeout=30, message="line 3, followed")
        # `bye` is written only now: a --follow that had not waited for it would not show it.
        subprocess.run(["podman", "exec", node.container_of("talker"), "touch", "/scratch/go"],
                       check=True)  # fmt: skip
        assert follow.wait(timeout=60) == 0
        reader.join(10)
    finally:
        follow.kill()
    output = "second run hello\nline 1\nline 2\nline 3\nbye\n"
    assert "".join(seen) == output
    wait_until(lambda: phase_is(control_plane, namespace, "talker", "Succeeded"), timeout=30,
               message="the pod to succeed")  # fmt: skip
    assert logs().stdout == output
    # stdout and stderr come on two pipes: their lines are in order within each, not across
    assert sorted(logs("--previous").stdout.splitlines()) == ["first run", "on stderr"]
    assert logs("--tail=2").stdout == "line 3\nbye\n"
    stamped = logs("--timestamps", "--tail=1").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d) bye\n", stamped), stamped
    assert logs("--limit-bytes=6").stdout == "second"
