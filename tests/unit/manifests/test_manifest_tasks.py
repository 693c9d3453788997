"""Task YAML → Submission: every field, and a message naming the field for each kind of mistake."""

from __future__ import annotations

import datetime
import pathlib
import textwrap

import pytest
from vahana.core import models
from vahana.manifests import errors, tasks

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "deploy" / "examples"

FULL = """\
apiVersion: vahana.dev/v1alpha1
kind: Task
metadata:
  name: full
  namespace: team-a
  uid: 0b7c-uid
spec:
  command: echo "$A" > out.txt
  pool: gpu-pool
  resources:
    cpu: 1500m
    memory: 2Gi
    gpu: 1
  workerSelector:
    zone: eu-1
  preferredWorkerLabels:
    dataset: imagenet
  env:
    A: one
    _B2: two
  inputFiles:
    - source: file:///etc/hostname
      destination: hostname
  outputFiles:
    - source: out.txt
      destination: file:///tmp/out.txt
  priority: 7
  deadline: 2030-01-31T18:00:00Z
  timeout: 1h30m
  experimentId: exp-42
  retry:
    maxTaskRetries: 2
    maxInfraRetries: 5
    backoff: 500ms
    maxBackoff: 2m
  ttlSecondsAfterFinished: 600
"""


def task(name: str = "t", **spec: object) -> dict[str, object]:
    """A Task object; `spec` defaults to a valid command."""
    return {
        "apiVersion": "vahana.dev/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": {"command": "true", **spec},
    }


def problems_of(text: str) -> list[str]:
    with pytest.raises(errors.ManifestError) as caught:
        tasks.parse_task_documents(textwrap.dedent(text), source="tasks.yaml")
    assert caught.value.problems, "a ManifestError always carries problems"
    return [str(problem) for problem in caught.value.problems]


def problems_of_object(obj: object) -> list[str]:
    with pytest.raises(errors.ManifestError) as caught:
        tasks.submission_from_resource(obj)  # type: ignore[arg-type]
    return [str(problem) for problem in caught.value.problems]


def test_every_field_lands_in_the_submission() -> None:
    [sub] = tasks.parse_task_documents(FULL, source="full.yaml")
    deadline = datetime.datetime(2030, 1, 31, 18, tzinfo=datetime.UTC).timestamp()
    assert sub == models.Submission(
        spec=models.TaskSpec(
            name="full",
            command='echo "$A" > out.txt',
            input_files=(models.FileTransfer("file:///etc/hostname", "hostname"),),
            output_files=(models.FileTransfer("out.txt", "file:///tmp/out.txt"),),
            environment={"A": "one", "_B2": "two"},
            resources=models.Resources(
                cpu_cores=1.5,
                memory_bytes=2 * 2**30,
                gpus=1,
                labels={"zone": "eu-1"},
                preferred_labels={"dataset": "imagenet"},
            ),
            priority=7,
            deadline=deadline,
            timeout_seconds=5400.0,
            experiment_id="exp-42",
        ),
        key="0b7c-uid",
        retry=models.RetryPolicy(
            max_task_retries=2, max_infra_retries=5, backoff_seconds=0.5, max_backoff_seconds=120.0
        ),
        pool="gpu-pool",
        namespace="team-a",
    )


def test_minimal_task_takes_the_defaults() -> None:
    sub = tasks.submission_from_resource(task("mini"))
    assert sub == models.Submission(
        spec=models.TaskSpec(name="mini", command="true"), namespace="default"
    )
    assert sub.retry == models.RetryPolicy()


def test_many_documents_and_lists_keep_their_order() -> None:
    text = """\
    apiVersion: vahana.dev/v1alpha1
    kind: Task
    metadata: {name: a}
    spec: {command: echo a}
    ---
    ---
    apiVersion: v1
    kind: List
    items:
      - {apiVersion: vahana.dev/v1alpha1, kind: Task, metadata: {name: b}, spec: {command: echo b}}
      - {apiVersion: vahana.dev/v1alpha1, kind: Task, metadata: {name: c}, spec: {command: echo c}}
    """
    subs = tasks.parse_task_documents(textwrap.dedent(text), source="x.yaml")
    assert [s.spec.name for s in subs] == ["a", "b", "c"]


def test_operator_objects_with_server_fields_pass() -> None:
    obj = task(
        "from-server",
        retry={"maxTaskRetries": 0, "maxInfraRetries": 3, "backoff": "1s", "maxBackoff": "60s"},
    )
    obj["metadata"] = {
        "name": "from-server",
        "namespace": "ns",
        "uid": "u-1",
        "generation": 1,
        "creationTimestamp": "2030-01-01T00:00:00Z",
        "finalizers": ["x"],
    }
    obj["status"] = {"phase": "Running"}
    sub = tasks.submission_from_resource(obj)
    assert (sub.key, sub.namespace) == ("u-1", "ns")


TASK_EXAMPLES = [p for p in sorted(EXAMPLES.glob("*.yaml")) if not p.name.startswith("workerpool")]


@pytest.mark.parametrize("path", TASK_EXAMPLES, ids=lambda p: p.name)
def test_task_examples_parse(path: pathlib.Path) -> None:
    assert tasks.parse_task_documents(path.read_text(), source=path.name)


def test_hello_example_has_what_it_promises() -> None:
    subs = tasks.parse_task_documents((EXAMPLES / "hello.yaml").read_text(), source="hello.yaml")
    assert any(s.spec.environment for s in subs)
    assert any(s.spec.input_files and s.spec.output_files for s in subs)
    assert any(
        s.spec.resources.cpu_cores == 0.5 and s.spec.resources.memory_bytes == 64 * 2**20
        for s in subs
    )
    assert len({s.spec.priority for s in subs}) > 1


def test_message_shape() -> None:
    text = """\
    apiVersion: vahana.dev/v1alpha1
    kind: Task
    metadata: {name: good}
    spec: {command: echo}
    ---
    apiVersion: vahana.dev/v1alpha1
    kind: Task
    metadata: {name: bad}
    spec: {command: ""}
    """
    assert problems_of(text) == [
        'tasks.yaml: task "bad" (document 2): spec.command: must not be empty'
        " — give the shell command to run"
    ]


def test_invalid_yaml_gives_the_line() -> None:
    [problem] = problems_of("apiVersion: vahana.dev/v1alpha1\nkind: Task\nspec:\n  command: [a\n")
    assert "line 5" in problem and "invalid YAML" in problem


def test_duplicate_yaml_key_is_refused_like_kubectl() -> None:
    [problem] = problems_of("kind: Task\nkind: Task\n")
    assert "line 2" in problem and "twice" in problem


@pytest.mark.parametrize(
    ("obj", "field", "words"),
    [
        ({**task(), "apiVersion": "v1"}, "apiVersion", "vahana.dev/v1alpha1"),
        ({**task(), "kind": "WorkerPool"}, "kind", "must be Task"),
        (task(timout="5s"), "spec.timout", "did you mean timeout"),
        (task(resources={"cpu": "-1"}), "spec.resources.cpu", "500m"),
        (task(resources={"cpu": -1}), "spec.resources.cpu", "≥ 0"),
        (task(resources={"cpu": 0.5}), "spec.resources.cpu", "quoted"),
        (task(resources={"memory": "-1Gi"}), "spec.resources.memory", "512Mi"),
        (task(resources={"memory": -2}), "spec.resources.memory", "≥ 0"),
        (task(resources={"memory": "500m"}), "spec.resources.memory", "500Mi"),
        (task(resources={"gpu": -1}), "spec.resources.gpu", "≥ 0"),
        (task(resources={"gpu": "1"}), "spec.resources.gpu", "whole number"),
        (task(command=""), "spec.command", "must not be empty"),
        (task(timeout="1d"), "spec.timeout", "90s"),
        (task(retry={"backoff": "soon"}), "spec.retry.backoff", "duration"),
        (task(retry={"maxTaskRetries": -1}), "spec.retry.maxTaskRetries", "≥ 0"),
        (task(env={"1BAD": "x"}), "spec.env", "shell variable names"),
        (task(env={"A-B": "x"}), "spec.env", "'A-B'"),
        (task(env={"A": 1}), "spec.env.A", "a string"),
        (task(deadline="tomorrow"), "spec.deadline", "RFC 3339"),
        (task(deadline="2030-01-01T00:00:00"), "spec.deadline", "RFC 3339"),
        (task(inputFiles=[{"source": "a"}]), "spec.inputFiles[0].destination", "required"),
        (
            task(outputFiles=[{"source": "", "destination": "b"}]),
            "spec.outputFiles[0].source",
            "empty",
        ),
        (task(priority="high"), "spec.priority", "whole number"),
        (task(ttlSecondsAfterFinished=-1), "spec.ttlSecondsAfterFinished", "≥ 0"),
        ({**task(), "metadata": {}}, "metadata.name", "required"),
        ({**task(), "metadata": {"name": "Bad_Name"}}, "metadata.name", "lower-case"),
        ({k: v for k, v in task().items() if k != "spec"}, "spec", "required"),
        ({**task(), "spec": {}}, "spec.command", "required"),
        ({**task(), "extra": 1}, "extra", "unknown field"),
    ],
)
def test_each_mistake_names_its_field(obj: dict[str, object], field: str, words: str) -> None:
    found = problems_of_object(obj)
    assert any(f": {field}: " in p and words in p for p in found), found


def test_missing_name_is_reported_by_document() -> None:
    [problem] = problems_of(
        "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {}\nspec: {command: x}\n"
    )
    assert problem.startswith("tasks.yaml: document 1: metadata.name: required")


def test_duplicate_names_are_refused_and_nothing_is_returned() -> None:
    one = (
        "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: same}\nspec: {command: x}\n"
    )
    [problem] = problems_of(one + "---\n" + one)
    assert 'task "same" (document 2): metadata.name: used twice (first in document 1)' in problem


def test_same_name_in_two_namespaces_is_fine() -> None:
    doc = "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {{name: same, namespace: {}}}\n"
    text = doc.format("a") + "spec: {command: x}\n---\n" + doc.format("b") + "spec: {command: x}\n"
    assert len(tasks.parse_task_documents(text, source="x")) == 2


def test_all_problems_of_all_documents_are_reported() -> None:
    text = """\
    apiVersion: vahana.dev/v1alpha1
    kind: Task
    metadata: {name: one}
    spec: {command: "", resources: {gpu: -1}}
    ---
    - not a task
    ---
    apiVersion: v1
    kind: List
    items:
      - {apiVersion: vahana.dev/v1alpha1, kind: Task, metadata: {name: two}, spec: {timeout: 5}}
    """
    found = problems_of(text)
    assert any('task "one" (document 1): spec.command' in p for p in found)
    assert any('task "one" (document 1): spec.resources.gpu' in p for p in found)
    assert any("document 2: expected a Task object, found a list" in p for p in found)
    assert any('task "two" (document 3, item 1): spec.timeout' in p for p in found)
    assert any('task "two" (document 3, item 1): spec.command: required' in p for p in found)


@pytest.mark.parametrize("text", ["", "---\n", "# nothing\n"])
def test_a_file_without_tasks_is_an_error(text: str) -> None:
    assert "no Task found" in problems_of(text)[0]


def test_non_string_keys_are_refused() -> None:
    found = problems_of(
        "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: k}\n"
        "spec: {command: x, env: {1: a}}\n"
    )
    assert any("spec.env.1: keys must be strings" in p for p in found)


def test_yaml_scalars_read_as_kubectl_reads_them() -> None:
    found = problems_of(
        "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: y}\n"
        "spec: {command: x, env: {ANSWER: y}}\n"
    )
    assert any("spec.env.ANSWER: must be a string, not the boolean true" in p for p in found)
    text = FULL.replace("deadline: 2030-01-31T18:00:00Z", "deadline: 2030-01-31T19:00:00+01:00")
    [sub] = tasks.parse_task_documents(text, source="x")
    assert sub.spec.deadline == datetime.datetime(2030, 1, 31, 18, tzinfo=datetime.UTC).timestamp()


def test_unusable_quantity_that_matches_the_pattern() -> None:
    found = problems_of_object(task(resources={"cpu": "1e999"}))
    assert any("spec.resources.cpu: " in p and "exponent" in p for p in found)


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "x: &x {y: *x}\n", "[" * 5000 + "]" * 5000])
def test_alias_cycles_and_deep_nesting_are_refused(text: str) -> None:
    assert problems_of(text)


def test_missing_header_fields_are_required() -> None:
    found = problems_of("metadata: {name: nn}\nspec: {command: x}\n")
    assert 'tasks.yaml: task "nn" (document 1): apiVersion: required' in found[0]
    assert 'tasks.yaml: task "nn" (document 1): kind: required' in found[1]


def test_the_error_types_are_reachable_from_tasks() -> None:
    assert tasks.ManifestError is errors.ManifestError and tasks.Problem is errors.Problem


def test_whole_numbers_written_as_3_0_are_integers_the_protocol_takes() -> None:
    """`priority: 3.0` passes the schema's integer check (as it does the API server's); the
    submission holds ints, which the protocol's int32 fields need."""
    from vahana.rpc import convert

    obj = task(
        priority=3.0,
        resources={"gpu": 1.0},
        limits={"processes": 5.0, "openFiles": 10.0},
        retry={"maxTaskRetries": 1.0, "maxInfraRetries": 2.0},
        array={"count": 4.0},
    )
    submission = tasks.submission_from_resource(obj)
    spec, retry = submission.spec, submission.retry
    whole = (
        spec.priority,
        spec.resources.gpus,
        spec.limits.processes,
        spec.limits.open_files,
        retry.max_task_retries,
        retry.max_infra_retries,
        submission.array.count if submission.array else None,
    )
    assert whole == (3, 1, 5, 10, 1, 2, 4)
    assert all(type(value) is int for value in whole)
    record = models.TaskRecord(id="t-1", spec=spec, created_at=0.0, seq=1, retry=retry)
    assert convert.task_to_pb(record).priority == 3
