"""Kubernetes tier fixtures: one control plane per session, a namespace and a kubelet per test.

- `control_plane` (session): a started `ControlPlane` with the Vahana CRDs applied.
- `namespace` (function): a fresh namespace (its `default` ServiceAccount exists), deleted after.
- `kubelet` (function): a started `FakeKubelet` for that namespace (PATH: the venv's bin first),
  stopped after.
- `kube_api` (function): an admin `kubernetes.client.ApiClient`, closed after.
Without KUBEBUILDER_ASSETS the tests skip (fail under CI=true).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.controlplane import ControlPlane
from tests.k8s.kubelet import FakeKubelet
from tests.waiting import wait_until


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane()
    plane.start()
    try:
        plane.apply_crds()
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem or 't'}-{secrets.token_hex(3)}"
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    status, body = control_plane.rest.request("POST", "/api/v1/namespaces", manifest)
    assert status == 201, body
    # Pods are refused until the serviceaccount controller made the namespace's `default`.
    account = f"/api/v1/namespaces/{name}/serviceaccounts/default"
    try:
        wait_until(
            lambda: control_plane.rest.request("GET", account)[0] == 200,
            timeout=30,
            message=f"the default ServiceAccount of {name}",
        )
    except AssertionError as error:
        control_plane.check_alive()
        tail = control_plane.log_tail("kube-controller-manager")
        raise AssertionError(f"{error}\nkube-controller-manager log:\n{tail}") from None
    yield name
    control_plane.rest.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
def kubelet(control_plane: ControlPlane, namespace: str) -> Iterator[FakeKubelet]:
    # The venv's bin first, so that `vahana-worker` in a Pod's command resolves.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    fake = FakeKubelet(control_plane, [namespace], extra_env={"PATH": path}).start()
    yield fake
    fake.stop()


@pytest.fixture
def kube_api(control_plane: ControlPlane) -> Iterator[Any]:
    client = control_plane.api_client()
    yield client
    client.close()
