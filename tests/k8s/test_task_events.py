"""Events on Tasks: `kubectl describe task` tells a completed, a failed and a retried task's
story (Queued, Scheduled, Started, Completed / Failed with the exit code, Retrying with why)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.controlplane import ControlPlane
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.test_operator import (  # noqa: F401 - fixtures
    apply,
    kubernetes_pool,
    operator,
    operator_kubeconfig,
    phases,
    pods,
    task_yaml,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.kubernetes


def task_events(plane: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = plane.kubectl(
        "get", "events", "-n", namespace, "-o", "json",
        "--field-selector", f"involvedObject.kind=Task,involvedObject.name={name}",
    )  # fmt: skip
    return list(json.loads(listed.stdout)["items"])


def test_describe_task_shows_the_events_of_completed_failed_and_retried_tasks(
    control_plane: ControlPlane,
    namespace: str,
    operator: Any,  # noqa: F811
    pods: FakeKubelet,  # noqa: F811
    tmp_path: Path,
) -> None:
    marker = tmp_path / "tried-once"
    apply(control_plane, namespace, kubernetes_pool("evp", maximum=1, slots=2))
    apply(
        control_plane,
        namespace,
        task_yaml("ok", "echo fine", pool="evp")
        + "---\n"
        + task_yaml("bad", "exit 3", pool="evp", retry={"maxTaskRetries": 0})
        + "---\n"
        + task_yaml(
            "flaky",
            f"if [ -e {marker} ]; then echo second; else touch {marker}; exit 1; fi",
            pool="evp",
            retry={"maxTaskRetries": 1, "backoff": "0s"},
        ),
    )
    want = {"ok": "Completed", "bad": "Failed", "flaky": "Completed"}
    wait_until(
        lambda: all(phases(control_plane, namespace).get(k) == v for k, v in want.items()),
        timeout=120,
        message="the three tasks end",
    )

    def reasons(name: str) -> set[str]:
        return {event["reason"] for event in task_events(control_plane, namespace, name)}

    wait_until(lambda: "Completed" in reasons("ok"), timeout=10, message="ok's events")
    wait_until(lambda: "Failed" in reasons("bad"), timeout=10, message="bad's events")
    try:
        wait_until(lambda: {"Retrying", "Completed"} <= reasons("flaky"), timeout=10)
    except AssertionError:
        raise AssertionError(
            [(e["reason"], e["message"]) for e in task_events(control_plane, namespace, "flaky")]
        ) from None
    described = {
        name: control_plane.kubectl("describe", "task", name, "-n", namespace).stdout
        for name in want
    }
    assert re.search(r"Normal\s+Queued\s", described["ok"]), described["ok"]
    assert re.search(r"Normal\s+Completed\s.*exit code 0", described["ok"]), described["ok"]
    assert re.search(r"Warning\s+Failed\s.*exit code 3", described["bad"]), described["bad"]
    assert re.search(r"Warning\s+Retrying\s.*attempt 1", described["flaky"]), described["flaky"]
    for name in want:
        for event in task_events(control_plane, namespace, name):
            assert event["source"]["component"] == "vahana-operator"


def test_describe_workerpool_shows_scaling_and_start_failures(
    control_plane: ControlPlane,
    namespace: str,
    operator: Any,  # noqa: F811
    pods: FakeKubelet,  # noqa: F811
) -> None:
    good = json.loads(kubernetes_pool("scaling", minimum=1, maximum=1))
    broken = json.loads(kubernetes_pool("broken", minimum=1, maximum=1))
    broken["spec"]["kubernetes"]["nodeSelector"] = {"not a valid key!": "x"}
    apply(control_plane, namespace, json.dumps(good) + "\n---\n" + json.dumps(broken))

    def described(name: str) -> str:
        return control_plane.kubectl("describe", "workerpool", name, "-n", namespace).stdout

    wait_until(
        lambda: re.search(r"Normal\s+Scaled\s.*scaled up to 1 worker", described("scaling")),
        timeout=60,
        message="the Scaled event",
    )
    wait_until(
        lambda: re.search(r"Warning\s+StartFailed\s.*creating Job", described("broken")),
        timeout=60,
        message="the StartFailed event",
    )
