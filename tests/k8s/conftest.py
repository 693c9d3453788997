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
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s import namespaces
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kubelet import FakeKubelet


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
    name = namespaces.name_for(request.node.name)
    namespaces.create(control_plane, name)
    namespaces.wait_ready(control_plane, name)
    yield name
    namespaces.delete(control_plane, name)


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
