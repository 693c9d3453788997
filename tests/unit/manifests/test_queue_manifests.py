"""Queue files: checked against the Queue CRD, then one quota per pool, each bounding something."""

from __future__ import annotations

import pytest
from vahana.core import fairshare
from vahana.manifests import queues

GOOD = """
apiVersion: vahana.dev/v1alpha1
kind: Queue
metadata: {name: team-a}
spec:
  weight: 3
  borrowing: false
  quotas:
    - {tasks: 2}
    - {pool: gpu, gpu: 4, memory: 64Gi, cpu: "8"}
"""


def test_a_queue_file_becomes_queue_configs() -> None:
    [config] = queues.parse_queue_documents(GOOD, source="q.yaml")
    assert config == fairshare.QueueConfig(
        name="team-a",
        weight=3.0,
        quotas=(
            fairshare.Quota(tasks=2),
            fairshare.Quota(pool="gpu", cpu_cores=8.0, memory_bytes=64 * 2**30, gpus=4),
        ),
        borrowing=False,
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "{quotas: [{pool: x, tasks: 1}, {pool: x, gpu: 1}]}",
            'q.yaml: queue "q" (document 1): spec.quotas[1].pool: a second quota for pool x'
            " — merge them into one quota",
        ),
        (
            "{quotas: [{pool: x}]}",
            'q.yaml: queue "q" (document 1): spec.quotas[0]: bounds nothing'
            " — give at least one of tasks, cpu, memory, gpu",
        ),
        ("{weight: 0}", "spec.weight"),
        ("{quotas: [{cpu: lots}]}", "spec.quotas[0].cpu"),
    ],
)
def test_bad_queues_are_refused_naming_the_field(spec: str, expected: str) -> None:
    text = f"apiVersion: vahana.dev/v1alpha1\nkind: Queue\nmetadata: {{name: q}}\nspec: {spec}\n"
    with pytest.raises(queues.ManifestError) as caught:
        queues.parse_queue_documents(text, source="q.yaml")
    assert expected in str(caught.value)
