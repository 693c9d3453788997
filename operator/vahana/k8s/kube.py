"""The Kubernetes API client: from $KUBECONFIG (or ~/.kube/config), else the in-cluster account."""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes import config


def api_client() -> k8s.ApiClient:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return k8s.ApiClient()
