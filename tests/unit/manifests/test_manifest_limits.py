"""Task spec.limits: YAML → core Limits, validation, store JSON (old rows without limits) and the
worker.Task message, both ways."""

from __future__ import annotations

import json

import pytest
from vahana.core import models, validation
from vahana.manifests import errors, tasks
from vahana.rpc import convert
from vahana.store import codec

TASK = """\
apiVersion: vahana.dev/v1alpha1
kind: Task
metadata: {{name: limited}}
spec:
  command: echo hi
  limits: {limits}
"""

FULL = "{cpuTime: 1500ms, memory: 200Mi, processes: 50, openFiles: 64, fileSize: 1Mi}"


def parse(limits: str) -> models.Submission:
    return tasks.parse_task_documents(TASK.format(limits=limits), source="t.yaml")[0]


def test_every_limit_is_parsed_with_its_unit() -> None:
    assert parse(FULL).spec.limits == models.Limits(
        cpu_seconds=2,  # rounded up: RLIMIT_CPU counts whole seconds
        memory_bytes=200 * 2**20,
        processes=50,
        open_files=64,
        file_size_bytes=2**20,
    )


def test_unset_limits_are_zero_the_workers_defaults() -> None:
    assert parse("{}").spec.limits == models.Limits()
    assert parse("{memory: 1Gi}").spec.limits == models.Limits(memory_bytes=2**30)


@pytest.mark.parametrize(
    ("limits", "path"),
    [
        ("{processes: -1}", "spec.limits.processes"),
        ("{openFiles: x}", "spec.limits.openFiles"),
        ("{memory: lots}", "spec.limits.memory"),
        ("{fileSize: -5Mi}", "spec.limits.fileSize"),
        ("{cpuTime: 10}", "spec.limits.cpuTime"),
        ("{cpu: 1}", "spec.limits"),
    ],
)
def test_bad_limits_name_their_field(limits: str, path: str) -> None:
    with pytest.raises(errors.ManifestError) as caught:
        parse(limits)
    assert path in str(caught.value)


def test_validation_refuses_negative_and_oversized_limits() -> None:
    spec = models.TaskSpec(
        name="t", command="true", limits=models.Limits(memory_bytes=-1, processes=2**31)
    )
    found = validation.problems(models.Submission(spec=spec))
    assert any(p.startswith("limits.memory: must be ≥ 0") for p in found)
    assert any(p.startswith("limits.processes: must be at most") for p in found)


def test_store_json_round_trips_and_reads_rows_written_before_limits() -> None:
    spec = parse(FULL).spec
    assert codec.spec_from_json(codec.spec_to_json(spec)) == spec
    old = json.loads(codec.spec_to_json(spec))
    del old["limits"]
    assert codec.spec_from_json(json.dumps(old)).limits == models.Limits()


def test_worker_message_round_trips() -> None:
    spec = parse(FULL).spec
    message = convert.task_to_pb(models.TaskRecord(id="t-1", spec=spec, created_at=0.0, seq=1))
    assert message.limits.memory_bytes == 200 * 2**20
    assert convert.spec_of(message) == spec
    plain = convert.task_to_pb(
        models.TaskRecord(id="t-2", spec=parse("{}").spec, created_at=0.0, seq=2)
    )
    assert not plain.HasField("limits")
