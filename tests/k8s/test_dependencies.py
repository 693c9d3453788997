"""Dependencies under the operator, on a real API server: a diamond applied as one file (its
last Task first) runs in order, a failed upstream ends its dependent UpstreamFailed naming it
while the other branch still runs, and a cycle or an unknown name is refused naming it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.controlplane import ControlPlane
from tests.k8s.test_arrays_and_queues import LOCAL_POOL
from tests.k8s.test_operator import apply, get, operator, operator_kubeconfig, task_yaml
from tests.waiting import wait_until

pytestmark = pytest.mark.kubernetes
__all__ = ["operator", "operator_kubeconfig"]  # fixtures used here


def _status(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return (get(plane, namespace, "task", name) or {}).get("status") or {}


def _final(plane: ControlPlane, namespace: str, *names: str) -> dict[str, dict[str, Any]]:
    def all_final() -> dict[str, dict[str, Any]] | None:
        found = {n: _status(plane, namespace, n) for n in names}
        done = all(s.get("completionTime") or s.get("phase") == "Failed" for s in found.values())
        return found if done else None

    return wait_until(all_final, timeout=120, interval=0.5, message=f"{names} to end")


def test_a_diamond_runs_in_order_and_a_failure_stops_only_its_dependents(
    control_plane: ControlPlane, namespace: str, operator: Any
) -> None:
    apply(control_plane, namespace, LOCAL_POOL)
    gate = Path(tempfile.mkdtemp(prefix="vh-gate-")) / "go"
    pipeline = "---\n".join(
        [
            task_yaml("d", "true", dependsOn=["b", "c"]),
            task_yaml("c", "true", dependsOn=["a"]),
            task_yaml("b", "exit 3", dependsOn=["a"]),
            task_yaml("a", f"while [ ! -e {gate} ]; do sleep 0.05; done"),
        ]
    )
    apply(control_plane, namespace, pipeline)
    waiting = wait_until(
        lambda: (lambda s: s if s.get("pendingReason") else None)(
            _status(control_plane, namespace, "d")
        ),
        timeout=60,
        message="d accepted and waiting",
    )
    assert waiting["phase"] == "Pending"
    assert waiting["pendingReason"] == "waiting for b, c"
    assert _status(control_plane, namespace, "b").get("pendingReason") == "waiting for a"
    gate.touch()
    ended = _final(control_plane, namespace, "a", "b", "c", "d")
    assert ended["a"]["phase"] == "Completed"
    assert ended["b"]["phase"] == "Failed"
    assert ended["c"]["phase"] == "Completed"  # the other branch still ran
    assert ended["d"]["phase"] == "UpstreamFailed"
    assert "b ended FAILED" in ended["d"]["message"]
    assert ended["c"]["startTime"] >= ended["a"]["completionTime"]
    shown = control_plane.kubectl("get", "tasks", "-n", namespace).stdout
    assert "UpstreamFailed" in shown


def test_a_cycle_and_an_unknown_name_are_refused_naming_them(
    control_plane: ControlPlane, namespace: str, operator: Any
) -> None:
    apply(
        control_plane,
        namespace,
        "---\n".join(
            [
                task_yaml("x", "true", dependsOn=["y"]),
                task_yaml("y", "true", dependsOn=["x"]),
                task_yaml("z", "true", dependsOn=["ghost"]),
            ]
        ),
    )
    ended = _final(control_plane, namespace, "x", "y", "z")
    for name in ("x", "y"):
        assert ended[name]["phase"] == "Failed"
        assert "cycle" in ended[name]["message"], ended[name]
        assert "x → y → x" in ended[name]["message"] or "y → x → y" in ended[name]["message"]
    assert ended["z"]["phase"] == "Failed"
    assert "no Task named ghost" in ended["z"]["message"]
    [accepted] = [c for c in ended["z"]["conditions"] if c["type"] == "Accepted"]
    assert accepted["status"] == "False" and accepted["reason"] == "InvalidDependencies"
