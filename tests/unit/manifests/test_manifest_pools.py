"""WorkerPool files for the embedded scheduler: validated by the CRD schema, all or nothing."""

from __future__ import annotations

import pytest
from vahana.manifests import pools

SLURM = """\
apiVersion: vahana.dev/v1alpha1
kind: WorkerPool
metadata: {name: hpc, namespace: lab}
spec:
  type: slurm
  maxWorkers: 2
  walltime: 1h
  slurm: {partition: debug, extraArgs: ["--constraint=x"]}
"""


def test_a_slurm_pool_is_read_with_its_namespace_and_spec() -> None:
    [pool] = pools.parse_pool_documents(SLURM, source="p.yaml")
    assert (pool.namespace, pool.name) == ("lab", "hpc")
    assert pool.spec["slurm"]["partition"] == "debug"


def test_documents_and_lists_are_read_and_namespace_defaults() -> None:
    text = (
        SLURM.replace("namespace: lab", "")
        + "---\nkind: List\nitems:\n"
        + "".join(
            "  - " + line + "\n" if i == 0 else "    " + line + "\n"
            for i, line in enumerate(SLURM.replace("name: hpc", "name: two").splitlines())
        )
    )
    found = pools.parse_pool_documents(text, source="p.yaml")
    assert [(p.namespace, p.name) for p in found] == [("default", "hpc"), ("lab", "two")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SLURM.replace("maxWorkers: 2", "maxWorkers: 0"), "spec.maxWorkers"),
        (
            SLURM.replace('  slurm: {partition: debug, extraArgs: ["--constraint=x"]}\n', ""),
            "spec.slurm",
        ),
        (SLURM.replace("walltime: 1h", "walltime: forever"), "spec.walltime"),
        (SLURM.replace("kind: WorkerPool", "kind: Task"), "kind"),
        (SLURM + "---\n" + SLURM, "used twice"),
        (
            SLURM.replace("partition: debug,", "partition: debug, tls: {caFile: /ca.pem},"),
            "spec.slurm.tls.certFile",
        ),
        ("", "no WorkerPool found"),
        ("a: [", "invalid YAML"),
    ],
)
def test_bad_files_are_refused_with_the_field(text: str, expected: str) -> None:
    with pytest.raises(pools.ManifestError) as caught:
        pools.parse_pool_documents(text, source="p.yaml")
    assert expected in str(caught.value)


def test_a_pool_spec_is_a_typed_record_with_the_crds_defaults() -> None:
    from vahana.core import models
    from vahana.manifests import schema

    declared = schema.openapi_schema("WorkerPool")["properties"]["spec"]["properties"]
    parsed = pools.pool_spec({"type": "local", "maxWorkers": 3})
    assert parsed == models.PoolSpec(
        type="local",
        min_workers=declared["minWorkers"]["default"],
        max_workers=3,
        tasks_per_worker=declared["tasksPerWorker"]["default"],
        idle_timeout_seconds=300.0,  # the CRD's "5m"
        drain_timeout_seconds=30.0,  # the CRD's "30s"
        walltime_seconds=None,
        heartbeat_interval_seconds=None,
    )
    assert (declared["idleTimeout"]["default"], declared["drainTimeout"]["default"]) == (
        "5m",
        "30s",
    )
    given = pools.pool_spec(
        {"type": "slurm", "maxWorkers": 2, "walltime": "1h", "tasksPerWorker": 4}
    )
    assert (given.walltime_seconds, given.tasks_per_worker) == (3600.0, 4)
    # Zero is a value, not a missing field: the worker is told 0s (and refuses it).
    assert (
        pools.pool_spec(
            {"type": "local", "maxWorkers": 1, "heartbeatInterval": "0s"}
        ).heartbeat_interval_seconds
        == 0.0
    )
