"""The operator's dashboard in a real browser: its pools page lists what `kubectl get
workerpools` lists, its workers page what `kubectl get workers` lists."""

from __future__ import annotations

import json
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import free_port
from tests.integration.web.conftest import browser, open_page  # noqa: F401 (fixtures)
from tests.k8s import operator_process
from tests.k8s.controlplane import ControlPlane
from tests.k8s.serviceaccount import kubeconfig_for_service_account
from tests.waiting import wait_until

pytestmark = pytest.mark.kubernetes


def pool(name: str, kind: str, minimum: int, maximum: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": kind, "minWorkers": minimum, "maxWorkers": maximum}
    if kind == "kubernetes":
        spec.update(resources={"cpu": "1", "memory": "512Mi"}, kubernetes={"image": "vahana:t"})
    return {
        "apiVersion": "vahana.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture
def operator_with_ui(
    control_plane: ControlPlane, namespace: str
) -> Iterator[tuple[operator_process.OperatorProcess, str]]:
    control_plane.kubectl("create", "namespace", "vahana-system", check=False)
    kubeconfig = kubeconfig_for_service_account(
        control_plane, "vahana-system", "vahana", [operator_process.RBAC]
    )
    ui_port = free_port()
    with tempfile.TemporaryDirectory(prefix="vh-op-ui-") as state:
        process = operator_process.OperatorProcess(
            kubeconfig, namespace, Path(state), extra_args=("--ui", f"--ui-port={ui_port}")
        )
        process.start()
        try:
            yield process, f"http://127.0.0.1:{ui_port}/"
        finally:
            process.stop()


def kubectl_json(plane: ControlPlane, namespace: str, kind: str) -> list[dict[str, Any]]:
    out = plane.kubectl("get", kind, "-n", namespace, "-o", "json").stdout
    return list(json.loads(out)["items"])


def test_the_pools_and_workers_pages_list_what_kubectl_lists(
    control_plane: ControlPlane,
    namespace: str,
    operator_with_ui: Any,
    request: pytest.FixtureRequest,
) -> None:
    _process, url = operator_with_ui
    open_tab = request.getfixturevalue("open_page")
    for manifest in (pool("cpu", "local", 1, 3), pool("burst", "kubernetes", 0, 2)):
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))

    def columns() -> dict[str, tuple[Any, ...]]:
        """kubectl get workerpools: NAME TYPE MIN MAX READY BUSY, once both have a status."""
        found = {}
        for item in kubectl_json(control_plane, namespace, "workerpools"):
            status = item.get("status") or {}
            if "ready" not in status:
                return {}
            spec = item["spec"]
            key = f"{namespace}/{item['metadata']['name']}"
            row = (key, spec["type"], spec.get("minWorkers", 0), spec["maxWorkers"])
            found[key] = (*row, status["ready"], status["busy"])
        return found if len(found) == 2 and found[f"{namespace}/cpu"][4] == 1 else {}

    listed = wait_until(columns, timeout=60, message="both pools with a status, cpu ready")

    def served() -> dict[str, tuple[Any, ...]]:
        with urllib.request.urlopen(url + "api/pools", timeout=5) as response:
            rows = json.loads(response.read())
        return {
            r["key"]: (r["key"], r["type"], r["min"], r["max"], r["ready"], r["busy"])
            for r in rows
            if r["managed"]
        }

    wait_until(lambda: served() == listed, timeout=30, message=f"the dashboard's pools {listed}")
    page = open_tab(url)
    page.open("/pools")
    for key, row in listed.items():
        cells = page.tab.locator(f'tr[data-pool="{key}"] td').all_inner_texts()
        assert cells[:6] == [str(value) for value in row], (key, cells)
    page.shot("pools-operator")

    def mirrored() -> set[tuple[str, str]]:
        """kubectl get workers: ID and POOL of each Worker object the operator wrote (a Worker
        lives in its pool's namespace; the dashboard names a pool by <namespace>/<name>)."""
        items = kubectl_json(control_plane, namespace, "workers")
        return {
            (w["status"]["workerId"], f"{w['metadata']['namespace']}/{w['status']['pool']}")
            for w in items
            if w.get("status")
        }

    workers = wait_until(mirrored, timeout=30, message="Worker objects")
    page.open("/workers")
    rows = page.tab.locator("tr[data-worker]")
    shown = {
        (
            rows.nth(i).locator("td").nth(0).inner_text(),
            rows.nth(i).locator("td").nth(1).inner_text(),
        )
        for i in range(rows.count())
    }
    assert shown == workers
    page.shot("workers-operator")
