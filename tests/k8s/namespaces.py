"""Test namespaces on the control plane: named after their test, usable once their `default`
ServiceAccount exists, deleted after."""

from __future__ import annotations

import re
import secrets

from tests.k8s.controlplane import ControlPlane
from tests.waiting import wait_until


def name_for(test_name: str) -> str:
    """A new namespace name: the test's name, shortened, and a random suffix."""
    stem = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"{stem or 't'}-{secrets.token_hex(3)}"


def create(plane: ControlPlane, name: str) -> None:
    """Creates the namespace; `wait_ready` before Pods go in it."""
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    status, body = plane.rest.request("POST", "/api/v1/namespaces", manifest)
    assert status == 201, body


def wait_ready(plane: ControlPlane, name: str) -> None:
    """Pods are refused until the serviceaccount controller made the namespace's `default`."""
    account = f"/api/v1/namespaces/{name}/serviceaccounts/default"
    try:
        wait_until(
            lambda: plane.rest.request("GET", account)[0] == 200,
            timeout=30,
            message=f"the default ServiceAccount of {name}",
        )
    except AssertionError as error:
        plane.check_alive()
        tail = plane.log_tail("kube-controller-manager")
        raise AssertionError(f"{error}\nkube-controller-manager log:\n{tail}") from None


def delete(plane: ControlPlane, name: str) -> None:
    """Deletes the namespace and what is in it (without waiting for it to go)."""
    plane.rest.request("DELETE", f"/api/v1/namespaces/{name}")
