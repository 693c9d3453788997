"""Kubeconfigs that act as a ServiceAccount, so a process has exactly the RBAC it was granted.

`kubeconfig_for_service_account` applies RBAC manifests (e.g. the Helm chart's Role and
bindings), creates the ServiceAccount, mints a token with the TokenRequest API
(`kubectl create token`) and writes a kubeconfig using it: a missing permission then fails with
403, as in a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.k8s.controlplane import ControlPlane


def kubeconfig_for_service_account(
    plane: ControlPlane,
    namespace: str,
    name: str,
    rbac_yaml_paths: Sequence[Path] = (),
    *,
    duration: str = "1h",
) -> Path:
    """Returns the path of a kubeconfig authenticating as system:serviceaccount:<ns>:<name>.

    The manifests are applied with `-n namespace` (objects naming another namespace keep it).
    The ServiceAccount is created unless a manifest already did.
    """
    for path in rbac_yaml_paths:
        plane.kubectl("apply", "-n", namespace, "-f", str(path))
    exists = plane.kubectl("get", "serviceaccount", "-n", namespace, name, check=False)
    if exists.returncode != 0:
        plane.kubectl("create", "serviceaccount", "-n", namespace, name)
    token = plane.kubectl(
        "create", "token", "-n", namespace, name, "--duration", duration
    ).stdout.strip()
    if not token:
        raise AssertionError(f"kubectl create token {namespace}/{name} printed no token")
    path = plane.dir / f"kubeconfig-{namespace}-{name}"
    return plane.write_kubeconfig(
        path, user=f"system:serviceaccount:{namespace}:{name}", token=token, namespace=namespace
    )
