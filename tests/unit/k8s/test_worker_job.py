"""The worker Job manifest: the seed's shape, restricted pod security, owned by its pool."""

from __future__ import annotations

from pathlib import Path

import pytest
from vahana.core import models
from vahana.manifests import pools as pool_manifests
from vahana.pools import base, jobs, kubernetes


def spec(**overrides: object) -> jobs.KubernetesPoolSpec:
    values: dict[str, object] = dict(
        pool="gpu",
        namespace="science",
        pool_uid="uid-1",
        image="vahana:0.1",
        server_address="vahana.vahana-system.svc:50051",
        cpu="500m",
        memory="2Gi",
        gpus=1,
        tasks_per_worker=2,
        labels={"zone": "a"},
        pool_key="science/gpu",
    )
    values.update(overrides)
    return jobs.KubernetesPoolSpec(**values)  # type: ignore[arg-type]


def test_the_job_runs_one_worker_with_requests_equal_to_limits() -> None:
    job = jobs.build_worker_job(spec(), "gpu-abc123")
    assert job["metadata"]["name"] == "worker-gpu-abc123"
    assert job["metadata"]["namespace"] == "science"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert (
        container["resources"]["requests"]
        == container["resources"]["limits"]
        == {
            "cpu": "500m",
            "memory": "2Gi",
            "nvidia.com/gpu": 1,
        }
    )
    assert "--server-address=vahana.vahana-system.svc:50051" in container["args"]
    assert "--worker-id=gpu-abc123" in container["args"]
    assert "--pool=science/gpu" in container["args"]
    assert "--cpu-cores=0.5" in container["args"]
    assert "--max-tasks=2" in container["args"]
    assert "--label=zone=a" in container["args"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["WORKING_DIR"] == jobs.WORKING_DIR
    assert {"name": "work", "mountPath": jobs.WORKING_DIR} in container["volumeMounts"]
    assert {"name": "work", "emptyDir": {}} in pod["volumes"]
    assert job["spec"]["backoffLimit"] == 0


def test_the_job_is_owned_by_its_pool_and_labelled_to_be_found() -> None:
    job = jobs.build_worker_job(spec(), "gpu-abc123")
    [owner] = job["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "vahana.dev/v1alpha1",
        "kind": "WorkerPool",
        "name": "gpu",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels[jobs.POOL_LABEL] == "gpu"
        assert labels[jobs.WORKER_LABEL] == "gpu-abc123"


def test_the_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = jobs.build_worker_job(spec(), "w")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = pod["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True


@pytest.mark.parametrize("pool", ["gpu", "A_Very.Long/Pool Name" * 4, "---"])
def test_worker_ids_make_valid_job_names(pool: str) -> None:
    name = jobs.job_name(jobs.new_worker_id(pool))
    assert len(name) <= 63
    assert name.replace("-", "").isalnum() and name == name.lower()


def test_optional_fields_appear_only_when_set() -> None:
    bare = jobs.build_worker_job(spec(gpus=0), "w")["spec"]["template"]["spec"]
    assert "nodeSelector" not in bare and "tolerations" not in bare
    assert "nvidia.com/gpu" not in bare["containers"][0]["resources"]["limits"]
    full = jobs.build_worker_job(
        spec(
            node_selector={"disk": "ssd"},
            tolerations=[{"key": "gpu", "operator": "Exists"}],
            service_account="runner",
            image_pull_policy="IfNotPresent",
        ),
        "w",
    )["spec"]["template"]["spec"]
    assert full["nodeSelector"] == {"disk": "ssd"}
    assert full["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert full["serviceAccountName"] == "runner"
    assert full["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_credentials_come_from_secrets_never_from_the_job_itself() -> None:
    with_credentials = spec(tls_secret="worker-tls", bootstrap_secret="gpu-vahana-bootstrap")
    job = jobs.build_worker_job(with_credentials, "gpu-abc123")
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [token_env] = [e for e in container["env"] if e["name"] == "VAHANA_WORKER_BOOTSTRAP_TOKEN"]
    assert token_env == {
        "name": "VAHANA_WORKER_BOOTSTRAP_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "gpu-vahana-bootstrap", "key": "bootstrap-token"}},
    }
    assert {"name": "tls", "secret": {"secretName": "worker-tls"}} in pod["volumes"]
    assert {"name": "tls", "mountPath": jobs.TLS_DIR, "readOnly": True} in container["volumeMounts"]
    assert f"--tls-cert-file={jobs.TLS_DIR}/tls.crt" in container["args"]
    assert f"--tls-ca-file={jobs.TLS_DIR}/ca.crt" in container["args"]
    plain = jobs.build_worker_job(spec(), "gpu-abc123")["spec"]["template"]["spec"]
    assert not any(a.startswith("--tls") for a in plain["containers"][0]["args"])
    assert [v["name"] for v in plain["volumes"]] == ["work"]


def test_the_bootstrap_secret_is_owned_by_the_pool() -> None:
    secret = jobs.build_bootstrap_secret(spec(bootstrap_secret="gpu-vahana-bootstrap"), "pool.x")
    assert secret["metadata"]["name"] == "gpu-vahana-bootstrap"
    assert secret["metadata"]["namespace"] == "science"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert secret["stringData"] == {"bootstrap-token": "pool.x"}


def _context(section: dict[str, object], **overrides: object) -> base.PoolContext:
    values: dict[str, object] = dict(
        namespace="science",
        name="gpu",
        uid="uid-1",
        key="science/gpu",
        spec=pool_manifests.with_defaults(
            {"type": "kubernetes", "maxWorkers": 1, "kubernetes": section}
        ),
        capacity=models.Resources(1),
        server_address="vahana:50051",
        heartbeat_interval_seconds=30,
        state_dir=Path("/nonexistent"),
    )
    values.update(overrides)
    return base.PoolContext(**values)  # type: ignore[arg-type]


def test_a_pool_of_a_tls_scheduler_must_name_its_workers_tls_secret() -> None:
    with pytest.raises(ValueError, match=r"spec\.kubernetes\.tlsSecretName: required"):
        kubernetes.pool_spec(_context({"image": "v:1"}, tls_required=True))
    ready = kubernetes.pool_spec(
        _context(
            {"image": "v:1", "tlsSecretName": "worker-tls"},
            tls_required=True,
            bootstrap_secret="pool.s",
            drain_timeout_seconds=90.0,
        )
    )
    assert ready.tls_secret == "worker-tls"
    assert ready.bootstrap_secret.startswith("gpu-vahana-bootstrap-")
    rotated = kubernetes.pool_spec(
        _context(
            {"image": "v:1", "tlsSecretName": "worker-tls"},
            tls_required=True,
            bootstrap_secret="pool.t",
        )
    )
    assert rotated.bootstrap_secret != ready.bootstrap_secret  # a new secret, a new Secret
    assert ready.drain_timeout_seconds == 90.0
    assert "pool.s" not in repr(ready)
    assert kubernetes.pool_spec(_context({"image": "v:1"})).bootstrap_secret == ""
