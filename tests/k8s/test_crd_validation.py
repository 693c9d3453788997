"""The CRDs in a real apiserver: bad objects are refused naming the field; printer columns show."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.k8s.controlplane import REPO, ControlPlane

pytestmark = pytest.mark.kubernetes


def apply(plane: ControlPlane, namespace: str, manifest: str) -> tuple[int, str]:
    result = plane.kubectl(
        "apply", "--validate=strict", "-n", namespace, "-f", "-",
        input=textwrap.dedent(manifest), check=False,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def task(spec: str) -> str:
    return "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: bad}\nspec:\n" + spec


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("  command: 'true'\n  resources: {cpu: -1}\n", "spec.resources.cpu"),
        ("  command: ''\n", "spec.command"),
        ("  command: 'true'\n  comand: typo\n", "spec.comand"),
    ],
    ids=["negative-cpu", "empty-command", "unknown-field"],
)
def test_a_bad_task_is_refused_naming_the_field(
    control_plane: ControlPlane, namespace: str, spec: str, field: str
) -> None:
    code, output = apply(control_plane, namespace, task(spec))
    assert code != 0, output
    assert field in output


def test_a_pool_with_more_min_than_max_workers_is_refused(
    control_plane: ControlPlane, namespace: str
) -> None:
    code, output = apply(
        control_plane,
        namespace,
        """\
        apiVersion: vahana.dev/v1alpha1
        kind: WorkerPool
        metadata: {name: upside-down}
        spec: {type: local, minWorkers: 5, maxWorkers: 2}
        """,
    )
    assert code != 0, output
    assert "spec.minWorkers" in output
    assert "minWorkers must be ≤ maxWorkers" in output


def test_the_examples_are_accepted(control_plane: ControlPlane, namespace: str) -> None:
    examples = REPO / "deploy" / "examples"
    result = control_plane.kubectl(
        "apply", "--validate=strict", "-n", namespace, "-f", str(examples)
    )
    assert "created" in result.stdout
    assert "Warning" not in result.stderr, result.stderr
    names = control_plane.kubectl("get", "tasks,workerpools", "-n", namespace, "-o", "name")
    assert "task.vahana.dev/hello" in names.stdout.split()
    assert "workerpool.vahana.dev/k8s" in names.stdout.split()


def header(plane: ControlPlane, namespace: str, kind: str) -> str:
    return plane.kubectl("get", kind, "-n", namespace).stdout.splitlines()[0]


def test_tasks_and_pools_print_their_columns(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(REPO / "deploy" / "examples"))

    tasks = header(control_plane, namespace, "tasks")
    assert tasks.split() == [
        "NAME", "PHASE", "WORKER", "PROGRESS", "EXIT", "CODE", "ATTEMPTS", "AGE"
    ]  # fmt: skip
    assert "EXIT CODE" in tasks
    pools = header(control_plane, namespace, "workerpools")
    assert pools.split() == ["NAME", "TYPE", "MIN", "MAX", "READY", "BUSY", "AGE"]


def test_a_worker_shows_its_status_in_columns(control_plane: ControlPlane, namespace: str) -> None:
    worker = {"apiVersion": "vahana.dev/v1alpha1", "kind": "Worker", "metadata": {"name": "w-1"}}
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(worker))
    status = {
        "status": {
            "workerId": "worker-abc",
            "pool": "local",
            "status": "BUSY",
            "activeTasks": 2,
            "cpuUsage": 12.5,
            "memoryUsage": 40,
            "lastHeartbeat": "2025-01-01T00:00:00Z",
        }
    }
    control_plane.kubectl(
        "patch", "worker", "w-1", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip

    lines = control_plane.kubectl("get", "workers", "-n", namespace).stdout.splitlines()
    columns = ["ID", "POOL", "STATUS", "ACTIVE", "CPU%", "MEM%", "LAST HEARTBEAT", "AGE"]
    head = lines[0]
    positions = [head.index(column) for column in columns]
    assert positions == sorted(positions), head
    row = lines[1].split()
    assert row[:7] == ["w-1", "worker-abc", "local", "BUSY", "2", "12.5", "40"]
