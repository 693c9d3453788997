"""The worker Job manifest: the seed's shape, restricted pod security, owned by its pool."""

from __future__ import annotations

import pytest
from vahana.pools import jobs


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
