"""The fake kubelet with the real Job controller and garbage collector: Jobs end, fail, stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.k8s.controlplane import ControlPlane
from tests.k8s.kubelet import FakeKubelet
from tests.waiting import wait_until

pytestmark = pytest.mark.kubernetes


def job(name: str, args: list[str], **pod_spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "vahana/test:none", "command": args}
    container |= pod_spec.pop("container", {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]} | pod_spec},
        },
    }


def create(plane: ControlPlane, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    group = "api/v1" if manifest["apiVersion"] == "v1" else f"apis/{manifest['apiVersion']}"
    plural = manifest["kind"].lower() + "s"
    status, body = plane.rest.request("POST", f"/{group}/namespaces/{namespace}/{plural}", manifest)
    assert status == 201, body
    return body


def get(plane: ControlPlane, path: str) -> dict[str, Any] | None:
    status, body = plane.rest.request("GET", path)
    if status == 404:
        return None
    assert status == 200, body
    return body


def job_condition(plane: ControlPlane, namespace: str, name: str, kind: str) -> bool:
    found = get(plane, f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
    conditions = (found or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


def pods_of(plane: ControlPlane, namespace: str, job_name: str) -> list[dict[str, Any]]:
    found = get(plane, f"/api/v1/namespaces/{namespace}/pods?labelSelector=job-name%3D{job_name}")
    return list((found or {}).get("items", []))


def process_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def test_a_job_that_exits_zero_completes(
    control_plane: ControlPlane, namespace: str, kubelet: FakeKubelet
) -> None:
    create(control_plane, namespace, job("hello", ["bash", "-c", "echo hi; exit 0"]))

    wait_until(
        lambda: job_condition(control_plane, namespace, "hello", "Complete"),
        timeout=30,
        message="the Job controller to mark the Job Complete",
    )
    (pod,) = pods_of(control_plane, namespace, "hello")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == "vahana-fake-node"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert kubelet.log_of(pod["metadata"]["name"]) == "hi\n"


def test_a_job_that_exits_three_fails_with_that_code(
    control_plane: ControlPlane, namespace: str, kubelet: FakeKubelet
) -> None:
    create(control_plane, namespace, job("three", ["bash", "-c", "exit 3"]))

    wait_until(
        lambda: job_condition(control_plane, namespace, "three", "Failed"),
        timeout=30,
        message="the Job controller to mark the Job Failed",
    )
    (pod,) = pods_of(control_plane, namespace, "three")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"


@pytest.mark.parametrize("propagation", ["Background", "Foreground"])
def test_deleting_a_job_stops_its_process(
    control_plane: ControlPlane, namespace: str, kubelet: FakeKubelet, propagation: str
) -> None:
    create(control_plane, namespace, job("sleeper", ["sleep", "1000"]))
    pod_name = wait_until(
        lambda: next(iter(kubelet.processes()), ""), timeout=30, message="the sleep to start"
    )
    pid = kubelet.pid_of(pod_name)
    assert pid is not None
    wait_until(
        lambda: pods_of(control_plane, namespace, "sleeper")[0]["status"]["phase"] == "Running",
        timeout=30,
        message="the Pod to be Running",
    )

    options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs/sleeper"
    status, body = control_plane.rest.request("DELETE", path, options)
    assert status in (200, 202), body

    wait_until(lambda: process_gone(pid), timeout=30, message="the local process to end")
    wait_until(
        lambda: not pods_of(control_plane, namespace, "sleeper"),
        timeout=30,
        message="the Pod to be deleted",
    )
    wait_until(lambda: get(control_plane, path) is None, timeout=30, message="the Job to go")
    assert kubelet.pid_of(pod_name) is None


def test_an_owned_job_is_garbage_collected_with_its_owner(
    control_plane: ControlPlane, namespace: str, kubelet: FakeKubelet
) -> None:
    owner = create(
        control_plane,
        namespace,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}},
    )
    child = job("child", ["sleep", "1000"])
    child["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    ]
    create(control_plane, namespace, child)
    pod_name = wait_until(
        lambda: next(iter(kubelet.processes()), ""), timeout=30, message="the child to start"
    )
    pid = kubelet.pid_of(pod_name)
    assert pid is not None

    status, body = control_plane.rest.request(
        "DELETE", f"/api/v1/namespaces/{namespace}/configmaps/owner"
    )
    assert status == 200, body

    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/child"
    wait_until(
        lambda: get(control_plane, job_path) is None,
        timeout=30,
        message="the garbage collector to delete the Job",
    )
    wait_until(lambda: process_gone(pid), timeout=30, message="the child's process to end")


def test_env_and_empty_dir_reach_the_process(
    control_plane: ControlPlane, namespace: str, kubelet: FakeKubelet
) -> None:
    script = 'echo "$POD:$NS:$IP:$GREETING" >"$1/out" && test -d "${WORK%/*}" && cat "$1/out"'
    manifest = job(
        "env",
        ["bash", "-c", script, "bash", "/data"],
        container={
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "GREETING", "value": "hello $(NS)"},
                {"name": "WORK", "value": "/data/sandbox"},
            ],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        },
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    create(control_plane, namespace, manifest)

    wait_until(
        lambda: job_condition(control_plane, namespace, "env", "Complete"),
        timeout=30,
        message="the Job to complete",
    )
    (pod,) = pods_of(control_plane, namespace, "env")
    name = pod["metadata"]["name"]
    assert kubelet.log_of(name) == f"{name}:{namespace}:127.0.0.1:hello {namespace}\n"


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    control_plane: ControlPlane, namespace: str, kubelet: FakeKubelet
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stubborn"},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": "none",
                    "command": ["bash", "-c", "trap '' TERM; sleep 1000"],
                }
            ],
        },
    }
    create(control_plane, namespace, pod)
    pid = wait_until(
        lambda: kubelet.pid_of("stubborn") or 0, timeout=30, message="the pod to start"
    )

    path = f"/api/v1/namespaces/{namespace}/pods/stubborn"
    status, body = control_plane.rest.request("DELETE", path)
    assert status == 200, body
    # A bound Pod lingers, being deleted, until the kubelet confirms its process is gone.
    lingering = get(control_plane, path)
    assert lingering is not None and lingering["metadata"]["deletionTimestamp"]
    assert not process_gone(pid)

    wait_until(lambda: process_gone(pid), timeout=10, message="SIGKILL after the grace period")
    wait_until(lambda: get(control_plane, path) is None, timeout=10, message="the Pod to go")
