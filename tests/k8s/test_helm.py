"""The Helm chart helm/vahana: lint, render, schema, install on a real API server, and the
operator at work with exactly the chart's ServiceAccount and RBAC.

The install tests use a control plane of their own, started without the CRDs, so that the CRDs
found afterwards are the ones `helm install` put there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s import operator_process
from tests.k8s.controlplane import SETUP_HINT, ControlPlane, assets_dir, free_port, require
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.serviceaccount import kubeconfig_for_service_account
from tests.waiting import wait_until

pytestmark = pytest.mark.kubernetes

ROOT = operator_process.ROOT
CHART = ROOT / "helm" / "vahana"
EXAMPLES = ROOT / "deploy" / "examples"
RELEASE = "vahana"
SYSTEM = "vahana-system"
ACCOUNT = f"system:serviceaccount:{SYSTEM}:vahana"

# What `kubectl auth can-i --list` may show for the operator's ServiceAccount: resource -> verbs.
# Everything the operator does, nothing more (see the comments in templates/rbac.yaml).
OPERATOR_VERBS = {
    "tasks.vahana.dev": {"get", "list", "watch", "patch", "delete"},
    "tasks.vahana.dev/status": {"get", "patch"},
    "workerpools.vahana.dev": {"get", "list", "watch", "patch"},
    "workerpools.vahana.dev/status": {"get", "patch"},
    "queues.vahana.dev": {"get", "list", "watch", "patch"},
    "queues.vahana.dev/status": {"get", "patch"},
    "workers.vahana.dev": {"get", "list", "create", "delete"},
    "workers.vahana.dev/status": {"get", "patch"},
    "jobs.batch": {"get", "list", "create", "delete"},
    "events": {"create", "patch"},
    "events.events.k8s.io": {"create", "patch"},
    "customresourcedefinitions.apiextensions.k8s.io": {"list", "watch"},
    "namespaces": {"list", "watch"},
}
LEASE_VERBS = {"leases.coordination.k8s.io": {"get", "create", "update"}}
# Every authenticated user may review its own access (Kubernetes' default bindings).
FINAL = ("Completed", "Failed")
SELF_REVIEWS = {
    "selfsubjectreviews.authentication.k8s.io": {"create"},
    "selfsubjectaccessreviews.authorization.k8s.io": {"create"},
    "selfsubjectrulesreviews.authorization.k8s.io": {"create"},
}


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    assets = assets_dir()
    require(assets is not None and os.access(assets / "helm", os.X_OK), SETUP_HINT)
    assert assets is not None
    return assets / "helm"


def helm(
    helm_bin: Path, *args: str, kubeconfig: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": tempfile.gettempdir() + "/vh-helm-cache"}
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run(
        [str(helm_bin), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def render(helm_bin: Path, *values: str) -> list[dict[str, Any]]:
    text = helm(helm_bin, "template", RELEASE, str(CHART), "-n", SYSTEM, *values).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


# -- lint, render, schema ---------------------------------------------------------------------


def test_helm_lint_passes(helm_bin: Path) -> None:
    result = helm(helm_bin, "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout


def test_the_plain_manifests_are_current(helm_bin: Path) -> None:
    # The CRD copies are checked without helm in the unit tier (tests/unit/test_repository.py).
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_chart.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KUBEBUILDER_ASSETS": str(helm_bin.parent)},
    )
    assert result.returncode == 0, f"run `python scripts/sync_chart.py`:\n{result.stdout}"


def test_default_render_is_a_restricted_operator_with_its_service_and_rbac(
    helm_bin: Path,
) -> None:
    objects = by_kind(render(helm_bin))
    assert set(objects) == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "Service", "Deployment", "PersistentVolumeClaim",
    }  # fmt: skip
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["tini", "--", "vahana", "operator"]
    assert "--host=0.0.0.0" in container["args"]
    assert f"--worker-server-address=vahana.{SYSTEM}.svc:50051" in container["args"]
    assert "--metrics-port=9090" in container["args"]
    assert "--ui-port=8081" in container["args"]  # the dashboard: 8080 is the download port
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert container["readinessProbe"]["grpc"]["port"] == 50051
    assert container["livenessProbe"]["grpc"]["port"] == 50051
    # Pod Security Standard "restricted".
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "persistentVolumeClaim" in volumes[mounts["/var/lib/vahana"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    ports = {p["name"]: p["port"] for p in objects["Service"]["spec"]["ports"]}
    assert ports == {"grpc": 50051, "download": 8080, "metrics": 9090, "ui": 8081}
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container_ports == ports  # Services of these Pods forward to the same port
    assert env["VAHANA_POOLS_DISTRIBUTION_PORT"]["value"] == "8080"
    assert "VAHANA_POOLS_WORKER_SERVER_ADDRESS" not in env
    for doc in objects.values():
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "vahana"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_every_option_renders_postgres_ha_tls_service_monitor_network_policy(
    helm_bin: Path,
) -> None:
    docs = render(
        helm_bin,
        "--set", "replicaCount=3",
        "--set", "store.type=postgresql",
        "--set", "store.postgresql.existingSecret=vahana-db",
        "--set", "tls.serverSecretName=vahana-server-tls",
        "--set", "tls.clientCASecretName=vahana-client-ca",
        "--set", "tls.bindWorkerCertificates=true",
        "--set", "auth.bootstrapSecretName=vahana-bootstrap",
        "--set", "auth.clientTokenSecretName=vahana-client-token",
        "--set", "serviceMonitor.enabled=true",
        "--set", "networkPolicy.enabled=true",
        "--set", "networkPolicy.workerCIDRs={10.20.0.0/16}",
        "--set", "networkPolicy.uiFrom[0].podSelector.matchLabels.role=reader",
        "--set", "operator.watchNamespaces={team-a,team-b}",
    )  # fmt: skip
    objects = by_kind(docs)
    assert "PersistentVolumeClaim" not in objects
    deployment = objects["Deployment"]["spec"]
    assert deployment["replicas"] == 3
    assert deployment["strategy"]["type"] == "RollingUpdate"
    pod = deployment["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["VAHANA_STORE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "vahana-db",
        "key": "url",
    }
    assert {"--namespace=team-a", "--namespace=team-b"} <= set(container["args"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/vahana/tls/server", "/etc/vahana/tls/client-ca"} <= mounts
    assert {"/etc/vahana/auth/bootstrap", "/etc/vahana/auth/client"} <= mounts
    assert {
        "--tls-cert-file=/etc/vahana/tls/server/tls.crt",
        "--tls-key-file=/etc/vahana/tls/server/tls.key",
        "--tls-client-ca-file=/etc/vahana/tls/client-ca/ca.crt",
        "--bootstrap-token-file=/etc/vahana/auth/bootstrap/bootstrap-token",
        "--client-token-file=/etc/vahana/auth/client/client-token",
        "--bind-worker-certificates",
    } <= set(container["args"])
    assert "--insecure" not in container["args"]
    # The kubelet's gRPC probe cannot speak TLS: the port is probed by connecting.
    assert container["readinessProbe"]["tcpSocket"] == {"port": 50051}
    # Pools' bootstrap Secrets are created by the operator: create, nothing more.
    secret_rules = [
        rule for rule in objects["ClusterRole"]["rules"] if "secrets" in rule["resources"]
    ]
    assert secret_rules == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}["state"]
    # Standbys serve nothing until they lead: no liveness probe that would kill them.
    assert "livenessProbe" not in container
    monitor = objects["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    ingress = objects["NetworkPolicy"]["spec"]["ingress"]
    grpc_rule, download_rule, metrics_rule, ui_rule = ingress
    assert grpc_rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    # Pilots outside the cluster download the worker zipapp before they connect.
    assert download_rule == {
        "ports": [{"port": "download", "protocol": "TCP"}],
        "from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
    }
    assert grpc_rule["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "vahana-worker"
    }
    assert grpc_rule["from"][1] == {"ipBlock": {"cidr": "10.20.0.0/16"}}
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ui_rule == {
        "ports": [{"port": "ui", "protocol": "TCP"}],
        "from": [{"podSelector": {"matchLabels": {"role": "reader"}}}],
    }


def test_the_optional_objects_are_off_by_default(helm_bin: Path) -> None:
    kinds = {doc["kind"] for doc in render(helm_bin)}
    assert not kinds & {"ServiceMonitor", "NetworkPolicy"}


def test_metrics_off_turns_the_endpoint_off_and_drops_its_port(helm_bin: Path) -> None:
    objects = by_kind(render(helm_bin, "--set", "metrics.enabled=false"))
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert "--metrics-port=0" in container["args"]  # the operator's own default is 9090
    assert [p["name"] for p in objects["Service"]["spec"]["ports"]] == ["grpc", "download", "ui"]


def test_ui_off_turns_the_dashboard_off_and_drops_its_port(helm_bin: Path) -> None:
    objects = by_kind(render(helm_bin, "--set", "ui.enabled=false"))
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert "--no-ui" in container["args"]  # `vahana operator` serves it unless told not to
    assert "ui" not in [p["name"] for p in objects["Service"]["spec"]["ports"]]
    assert "ui" not in [p["name"] for p in container["ports"]]


def test_the_operator_command_uses_only_flags_the_operator_knows(helm_bin: Path) -> None:
    deployment = by_kind(render(helm_bin, "--set", "operator.watchNamespaces={a}"))["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    usage = subprocess.run(
        [sys.executable, "-m", "vahana.cli.main", "operator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    known = set(re.findall(r"--[a-z][a-z-]+", usage))
    flags = {arg.split("=", 1)[0] for arg in container["args"]}
    assert flags <= known, f"flags `vahana operator` does not know: {sorted(flags - known)}"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ("replicaCount: -1\n", "/replicaCount"),
        ("replicaCount: two\n", "/replicaCount"),
        ("bogus: 1\n", "bogus"),
        ("operator: {logLevel: loud}\n", "/operator/logLevel"),
        ("operator: {unknownSetting: 1}\n", "unknownSetting"),
        ("grpc: {port: 70000}\n", "/grpc/port"),
        ("store: {type: mysql}\n", "/store/type"),
        ("image: {pullPolicy: Sometimes}\n", "/image/pullPolicy"),
        ("networkPolicy: {workerCIDRs: [not-a-cidr]}\n", "/networkPolicy/workerCIDRs/0"),
        # Rules across fields.
        ("replicaCount: 2\n", "/store/type"),
        ("store: {type: postgresql}\n", "/store/postgresql/existingSecret"),
        ("metrics: {port: 50051}\n", "metrics.port"),
        ("ui: {port: 0}\n", "/ui/port"),
        ("ui: {port: 8080}\n", "ui.port"),
        ("remotePools: {downloadPort: 9090}\n", "remotePools.downloadPort"),
        ("remotePools: {workerServerAddress: 'no port'}\n", "/remotePools/workerServerAddress"),
        ("tls: {serverSecretName: server-tls}\n", "/tls/clientCASecretName"),
        ("tls: {bindWorkerCertificates: true}\n", "/tls/serverSecretName"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(
    helm_bin: Path, tmp_path: Path, values: str, field: str
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(values)
    # helm lint reports a template's `fail` without failing: only the schema's refusals count.
    commands = [["template", RELEASE]] + ([["lint"]] if field.startswith("/") else [])
    for command in commands:
        result = helm(helm_bin, *command, str(CHART), "-f", str(path), check=False)
        assert result.returncode != 0, f"helm {command[0]} accepted {values!r}"
        assert field in result.stdout + result.stderr


# -- installed on a real API server -----------------------------------------------------------


@pytest.fixture(scope="module")
def plane(helm_bin: Path) -> Iterator[ControlPlane]:
    """A control plane of these tests' own, with no CRDs until the chart installs them."""
    started = ControlPlane().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def installed(plane: ControlPlane, helm_bin: Path) -> ControlPlane:
    """The chart, checked with a server-side dry run, then installed by helm."""
    rendered = plane.dir / "rendered.yaml"
    rendered.write_text(
        helm(helm_bin, "template", RELEASE, str(CHART), "-n", SYSTEM, "--include-crds").stdout
    )
    plane.kubectl("create", "namespace", SYSTEM)
    dry = plane.kubectl("apply", "--dry-run=server", "-f", str(rendered))
    assert "customresourcedefinition.apiextensions.k8s.io/tasks.vahana.dev" in dry.stdout
    assert "(server dry run)" in dry.stdout
    assert plane.kubectl("get", "crd", "-o", "name").stdout.strip() == ""
    helm(helm_bin, "install", RELEASE, str(CHART), "-n", SYSTEM, kubeconfig=plane.kubeconfig)
    return plane


def test_helm_install_creates_the_crds_and_the_operator_objects(
    installed: ControlPlane, helm_bin: Path
) -> None:
    installed.kubectl(
        "wait", "--for", "condition=Established", "--timeout", "30s",
        "crd/tasks.vahana.dev", "crd/workerpools.vahana.dev", "crd/workers.vahana.dev",
    )  # fmt: skip
    status = json.loads(
        helm(
            helm_bin, "status", RELEASE, "-n", SYSTEM, "-o", "json", kubeconfig=installed.kubeconfig
        ).stdout
    )
    assert status["info"]["status"] == "deployed"
    assert "get tasks" in status["info"]["notes"]
    names = {
        "deployment": RELEASE,
        "service": RELEASE,
        "serviceaccount": RELEASE,
        "pvc": "vahana-state",
        "role": "vahana-leader-election",
        "rolebinding": "vahana-leader-election",
    }
    for kind, name in names.items():
        installed.kubectl("get", kind, "-n", SYSTEM, name)
    installed.kubectl("get", "clusterrole,clusterrolebinding", "vahana-operator")


def can_i_list(
    plane: ControlPlane, user: str, namespace: str
) -> tuple[dict[str, set[str]], set[str]]:
    """`kubectl auth can-i --list` as `user`: resource -> verbs, and the non-resource rows."""
    out = plane.kubectl("auth", "can-i", "--list", f"--as={user}", "-n", namespace).stdout
    resources: dict[str, set[str]] = {}
    non_resource = set()
    for line in out.splitlines()[1:]:
        verbs = set(re.search(r"\[([^\]]*)\]\s*$", line).group(1).split())  # type: ignore[union-attr]
        if line.startswith(" "):
            non_resource.add(" ".join(line.split()))
        else:
            resources.setdefault(line.split()[0], set()).update(verbs)
    return resources, non_resource


def test_can_i_list_shows_no_verbs_beyond_what_the_operator_uses(installed: ControlPlane) -> None:
    _, baseline = can_i_list(installed, f"system:serviceaccount:{SYSTEM}:nobody", SYSTEM)
    resources, non_resource = can_i_list(installed, ACCOUNT, SYSTEM)
    assert resources == {**OPERATOR_VERBS, **LEASE_VERBS, **SELF_REVIEWS}
    assert non_resource == baseline  # only what every authenticated user may read
    installed.kubectl("create", "namespace", "elsewhere")
    resources, _ = can_i_list(installed, ACCOUNT, "elsewhere")
    assert resources == {**OPERATOR_VERBS, **SELF_REVIEWS}  # leases only in its own namespace


@pytest.fixture
def work_namespace(installed: ControlPlane) -> Iterator[str]:
    name = "work"
    installed.kubectl("create", "namespace", name)
    wait_until(
        lambda: installed.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        timeout=30,
        message="the default ServiceAccount of the work namespace",
    )
    yield name
    installed.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def metrics_port(monkeypatch: pytest.MonkeyPatch) -> int:
    port = free_port()
    monkeypatch.setenv("VAHANA_METRICS_PORT", str(port))  # OperatorProcess passes os.environ on
    return port


@pytest.fixture
def chart_operator(
    installed: ControlPlane, work_namespace: str, metrics_port: int
) -> Iterator[operator_process.OperatorProcess]:
    """`vahana operator` acting as the chart's ServiceAccount, with the chart's RBAC only."""
    kubeconfig = kubeconfig_for_service_account(installed, SYSTEM, "vahana")
    with tempfile.TemporaryDirectory(prefix="vh-helm-op-") as state:
        process = operator_process.OperatorProcess(kubeconfig, work_namespace, Path(state))
        process.start()
        try:
            yield process
        finally:
            process.stop()


def phases(plane: ControlPlane, namespace: str) -> dict[str, str]:
    items = plane.read(namespace, "tasks")
    return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "") for i in items["items"]}


def test_the_operator_with_exactly_the_chart_rbac_runs_the_examples(
    installed: ControlPlane,
    work_namespace: str,
    chart_operator: operator_process.OperatorProcess,
    metrics_port: int,
) -> None:
    path = f"{operator_process.VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
    kubelet = FakeKubelet(installed, [work_namespace], extra_env={"PATH": path}).start()
    try:
        installed.kubectl("apply", "-n", work_namespace, "-f", str(EXAMPLES))
        on_local_pool = {
            "apiVersion": "vahana.dev/v1alpha1",
            "kind": "Task",
            "metadata": {"name": "on-local-pool"},
            "spec": {"pool": "local", "command": "echo on the local pool"},
        }
        installed.kubectl("apply", "-n", work_namespace, "-f", "-", input=json.dumps(on_local_pool))
        examples = {
            doc["metadata"]["name"]
            for path in EXAMPLES.glob("*.yaml")
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc["kind"] == "Task"
        }
        names = examples | {"on-local-pool"}

        def all_final() -> dict[str, str]:
            found = phases(installed, work_namespace)
            return found if all(found.get(n) in FINAL for n in names) else {}

        done = wait_until(all_final, timeout=90, message="every Task final")
        # The outcomes that depend on the operator and its RBAC (test_operator.py pins the
        # others): tasks ran on pool workers, the failing one failed with its exit code.
        assert done["on-local-pool"] == "Completed"
        assert done["hello"] == done["greet-env"] == done["small-resources"] == "Completed"
        assert done["exits-three"] == "Failed"
        # The kubernetes pool's Job was created under the chart's RBAC, and its worker ran.
        jobs = json.loads(
            installed.kubectl("get", "jobs", "-n", work_namespace, "-o", "json").stdout
        )
        assert jobs["items"]

        def workers_listed() -> str:
            out = installed.kubectl("get", "workers", "-n", work_namespace).stdout
            return out if "AVAILABLE" in out or "BUSY" in out else ""

        workers = wait_until(workers_listed, timeout=30, message="Worker objects listed")
        assert "ID" in workers
        # The chart's Service and probes point at /metrics: the operator serves it.
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert b"# TYPE" in response.read()
    finally:
        kubelet.stop()
    assert "Forbidden" not in chart_operator.log_text()
