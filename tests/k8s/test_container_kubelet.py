"""The container kubelet applies what a node applies: env, volumes, the service-account token,
security context, limits, probes, grace and exit codes — checked from inside the containers."""

from __future__ import annotations

import subprocess
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
