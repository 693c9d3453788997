"""A kubeconfig minted for a ServiceAccount has exactly that account's RBAC: the rest is 403."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.k8s.controlplane import ControlPlane
from tests.k8s.serviceaccount import kubeconfig_for_service_account

pytestmark = pytest.mark.kubernetes

READ_CONFIGMAPS = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-configmaps}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-reads-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps}
subjects:
  - {kind: ServiceAccount, name: reader}
"""


def test_a_service_account_may_only_do_what_its_role_grants(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(READ_CONFIGMAPS)
    kubeconfig = kubeconfig_for_service_account(control_plane, namespace, "reader", [rbac])

    whoami = control_plane.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=kubeconfig
    )
    assert whoami.stdout == f"system:serviceaccount:{namespace}:reader"
    control_plane.kubectl("create", "configmap", "seen", "-n", namespace)  # as the admin
    listed = control_plane.kubectl("get", "configmaps", "-o", "name", kubeconfig=kubeconfig)
    assert "configmap/seen" in listed.stdout.split()

    created = control_plane.kubectl(
        "create", "configmap", "nope", "--from-literal=a=b", kubeconfig=kubeconfig, check=False
    )
    assert created.returncode != 0
    assert 'is forbidden: User "system:serviceaccount:' in created.stderr, created.stderr
    assert 'cannot create resource "configmaps"' in created.stderr


def test_the_official_client_gets_403_too(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(READ_CONFIGMAPS)
    kubeconfig = kubeconfig_for_service_account(control_plane, namespace, "reader", [rbac])
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        core = client.CoreV1Api(api)
        core.list_namespaced_config_map(namespace)
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="nope"))
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_config_map(namespace, body)
        assert refused.value.status == 403
    finally:
        api.close()
