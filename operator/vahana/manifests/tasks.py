"""Task objects (the YAML a user would `kubectl apply`) → the core's `Submission` records.

`parse_task_documents` reads a whole file for `vahana run -f`: one or many documents, or a
`kind: List`, all or nothing. `submission_from_resource` turns one Task object (e.g. from the API
server, for the operator) into a Submission. Both validate against the Task CRD's schema first,
so what passes here passes the API server, and report every problem with its field path.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from vahana.core import arrays, dependencies, models, validation
from vahana.manifests import errors, messages, quantity, schema, yamlload

ManifestError = errors.ManifestError
Problem = errors.Problem

KIND = "Task"
LIST_KINDS = ("List", "TaskList")
DEFAULT_NAMESPACE = "default"


class _Place:
    """Where an object sits in a file, to label its problems."""

    def __init__(self, source: str, document: int = 0, item: int = 0) -> None:
        self.source, self.document, self.item = source, document, item
        self.task = ""

    def problem(self, path: str, message: str, hint: str = "") -> errors.Problem:
        return errors.Problem(
            source=self.source,
            message=message,
            path=path,
            hint=hint,
            document=self.document,
            item=self.item,
            task=self.task,
        )


def parse_task_documents(
    text: str, *, source: str, pipeline: bool = True
) -> list[models.Submission]:
    """Every Task in `text` (YAML documents separated by `---`, or a `kind: List`) as Submissions.

    All or nothing: raises `ManifestError` listing every problem, including a metadata.name used
    twice in one namespace, dependencies that form a cycle, and a file with no Task at all.
    `pipeline`: the file is the whole run, so a dependency must name one of its Tasks (else
    it may name a task submitted before, which the scheduler checks).
    """
    try:
        documents = yamlload.load_documents(text)
    except yamlload.YAMLProblem as exc:
        raise errors.ManifestError(
            [errors.Problem(source, f"invalid YAML: {exc.message}", hint=exc.hint, line=exc.line)]
        ) from None
    problems: list[errors.Problem] = []
    found: list[tuple[_Place, Mapping[str, Any]]] = []
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        place = _Place(source, index)
        if isinstance(document, Mapping) and document.get("kind") in LIST_KINDS:
            items = document.get("items")
            if not isinstance(items, list):
                hint = "put the Task objects in a list under items:"
                problems.append(place.problem("items", "must be a list of Task objects", hint))
                continue
            found.extend(
                (_Place(source, index, number), item) for number, item in enumerate(items, start=1)
            )
        else:
            found.append((place, document))
    submissions: list[models.Submission] = []
    seen: dict[tuple[str, str], _Place] = {}
    for place, obj in found:
        before = len(problems)
        submission = _submission(obj, place, problems)
        if submission is None or len(problems) > before:
            continue
        name_key = (submission.namespace, submission.spec.name)
        if name_key in seen:
            first = seen[name_key]
            where = f"document {first.document}" + (f", item {first.item}" if first.item else "")
            hint = "give every task in the file its own name"
            problems.append(place.problem("metadata.name", f"used twice (first in {where})", hint))
            continue
        seen[name_key] = place
        submissions.append(submission)
    if not problems:
        problems += _dependency_problems(submissions, source, pipeline=pipeline)
    if not problems and not submissions:
        hint = f"write objects with apiVersion: {schema.API_VERSION} and kind: {KIND}"
        problems.append(errors.Problem(source, "no Task found", hint=hint))
    if problems:
        raise errors.ManifestError(problems)
    return submissions


def _dependency_problems(
    submissions: list[models.Submission], source: str, *, pipeline: bool
) -> list[errors.Problem]:
    """The dependencies of a file form no cycle; in a pipeline, they name its own Tasks."""
    found = dependencies.problems(dependencies.nodes_of(submissions), {} if pipeline else None)
    return [errors.Problem(source, line) for line in found]  # each line says its fix


def submission_from_resource(obj: Mapping[str, Any]) -> models.Submission:
    """One Task object as a Submission; key is metadata.uid (empty when absent).

    Raises `ManifestError` when the object does not satisfy the Task schema.
    """
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    label = f"Task {namespace or DEFAULT_NAMESPACE}/{name}" if isinstance(name, str) else "Task"
    problems: list[errors.Problem] = []
    submission = _submission(obj, _Place(label), problems)
    if problems or submission is None:
        raise errors.ManifestError(problems)
    return submission


def _submission(
    obj: Any, place: _Place, problems: list[errors.Problem]
) -> models.Submission | None:
    """Validate one object and convert it; on any problem, add it to `problems`, return None."""
    if not isinstance(obj, Mapping):
        what = messages.describe_value(obj)
        hint = "each document must be a Task: apiVersion, kind, metadata, spec"
        problems.append(place.problem("", f"expected a Task object, found {what}", hint))
        return None
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str):
        place.task = metadata["name"]
    found = [place.problem(*line) for line in _shape_problems(obj, "")]
    if not found:
        found = _header_problems(obj, place)
    if not found and not schema.is_valid(KIND)(obj):  # the full account only when needed
        errors_ = schema.validator(KIND).iter_errors(obj)
        described = [line for error in errors_ for line in messages.describe(error)]
        found = [place.problem(*line) for line in sorted(described, key=lambda line: line[0])]
    if found:
        problems.extend(found)
        return None
    try:
        submission = _convert(obj)
    except _FieldError as exc:
        problems.append(place.problem(exc.path, exc.message, messages.HINTS.get(exc.leaf, "")))
        return None
    # What the scheduler would refuse (sizes in bytes, NUL bytes, …), refused before submitting.
    refused = [place.problem(*_split(line)) for line in validation.problems(submission)]
    if refused:
        problems.extend(refused)
        return None
    return submission


def _split(line: str) -> tuple[str, str]:
    """A core validation problem `field: message` as (manifest path, message)."""
    field, _, message = line.partition(": ")
    top = field.split(".", 1)[0].split("[", 1)[0]
    return ("metadata." if top in ("name", "namespace") else "spec.") + field, message


def _header_problems(obj: Mapping[str, Any], place: _Place) -> list[errors.Problem]:
    """apiVersion and kind, checked first: with the wrong ones, the schema is the wrong one."""
    found = []
    if obj.get("apiVersion") != schema.API_VERSION:
        hint = f"write apiVersion: {schema.API_VERSION}"
        what = f"must be {schema.API_VERSION}, not {messages.describe_value(obj.get('apiVersion'))}"
        found.append(place.problem("apiVersion", what if "apiVersion" in obj else "required", hint))
    if obj.get("kind") != KIND:
        hint = "this file is read for Task objects: write kind: Task"
        what = f"must be {KIND}, not {messages.describe_value(obj.get('kind'))}"
        found.append(place.problem("kind", what if "kind" in obj else "required", hint))
    return found


MAX_DEPTH = 32
"""Deeper nesting is no Task (the schema is 5 levels deep); it also stops YAML alias cycles."""


def _shape_problems(value: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str, str]]:
    """Keys that are not strings (YAML `1: x`) and nesting past MAX_DEPTH, before the schema."""
    if depth > MAX_DEPTH and isinstance(value, Mapping | list):
        yield path, "nested too deeply", "a Task is a few levels of mappings and lists"
    elif isinstance(value, Mapping):
        for key, sub in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield from _shape_problems(sub, here, depth + 1)
            else:
                yield here, "keys must be strings", "quote the key"
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _shape_problems(sub, f"{path}[{index}]", depth + 1)


class _FieldError(Exception):
    """A value the schema let through but the conversion cannot use (e.g. an absurd exponent)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message
        self.leaf = path.rsplit(".", 1)[-1]


def _parsed(path: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except (ValueError, ArithmeticError, OverflowError) as exc:
        raise _FieldError(path, str(exc)) from None


_FRACTION_RE = re.compile(r"(\.[0-9]{6})[0-9]+")


def parse_deadline(value: str) -> float:
    """An RFC 3339 time → seconds since the epoch."""
    text = _FRACTION_RE.sub(r"\1", value.upper())
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment.timestamp()


def _convert(obj: Mapping[str, Any]) -> models.Submission:
    """A validated Task object → Submission (values are known to have the schema's types)."""
    metadata, spec = obj["metadata"], obj["spec"]
    requested = spec.get("resources", {})
    resources = models.Resources(
        cpu_cores=_parsed("spec.resources.cpu", quantity.parse_cpu, requested.get("cpu", 0)),
        memory_bytes=_parsed(
            "spec.resources.memory", quantity.parse_memory, requested.get("memory", 0)
        ),
        gpus=_whole(requested.get("gpu", 0)),
        labels=dict(spec.get("workerSelector", {})),
        preferred_labels=dict(spec.get("preferredWorkerLabels", {})),
    )
    deadline = spec.get("deadline")
    timeout = spec.get("timeout")
    task = models.TaskSpec(
        name=metadata["name"],
        command=spec["command"],
        input_files=_transfers(spec.get("inputFiles", ())),
        output_files=_transfers(spec.get("outputFiles", ())),
        environment=dict(spec.get("env", {})),
        resources=resources,
        priority=_whole(spec.get("priority", 0)),
        deadline=None if deadline is None else _parsed("spec.deadline", parse_deadline, deadline),
        timeout_seconds=0.0
        if timeout is None
        else _parsed("spec.timeout", quantity.parse_duration, timeout),
        experiment_id=spec.get("experimentId", ""),
        limits=_limits(spec.get("limits", {})),
        queue=spec.get("queue", ""),
        depends_on=_depends_on(spec),
    )
    return models.Submission(
        spec=task,
        array=_array(spec.get("array")),
        key=metadata.get("uid", ""),
        retry=_retry(spec.get("retry", {})),
        pool=spec.get("pool", ""),
        namespace=metadata.get("namespace") or DEFAULT_NAMESPACE,
    )


def _whole(value: int | float) -> int:
    """A field the schema checked is an integer, as an int: YAML's `3.0` passes that check (as
    it does the API server's) but is a float, which the protocol's int32 fields refuse."""
    return int(value)


def _array(array: Mapping[str, Any] | None) -> models.ArraySpec | None:
    """spec.array: the count, or one instance per parameter set (the count, if given, must
    match them)."""
    if array is None:
        return None
    parameters = tuple(dict(values) for values in array.get("parameters", ()))
    for path, problem in arrays.check_parameters(parameters):
        raise _FieldError(path, f"{problem}: use a letter or _, then letters, digits or _")
    count = array.get("count")
    if parameters and count is not None and count != len(parameters):
        raise _FieldError(
            "spec.array.count",
            f"is {count} but {len(parameters)} parameter sets are given: leave count out",
        )
    if parameters:
        return models.ArraySpec(count=len(parameters), parameters=parameters)
    if count is None:
        raise _FieldError("spec.array", "give count, or parameters (one set per instance)")
    return models.ArraySpec(count=_whole(count), parameters=())


def _depends_on(spec: Mapping[str, Any]) -> tuple[models.Dependency, ...]:
    """spec.dependsOn with its condition and sameIndex (one for all of the task's names)."""
    condition = models.Condition(spec.get("dependencyCondition", models.Condition.AFTER_OK))
    same_index = bool(spec.get("sameIndex", False))
    return tuple(
        models.Dependency(name, condition, same_index) for name in spec.get("dependsOn", ())
    )


def _limits(limits: Mapping[str, Any]) -> models.Limits:
    """spec.limits; unset values are 0 (the worker's defaults). CPU time rounds up to seconds."""
    cpu_time, memory, file_size = (limits.get(k) for k in ("cpuTime", "memory", "fileSize"))
    return models.Limits(
        cpu_seconds=0
        if cpu_time is None
        else math.ceil(_parsed("spec.limits.cpuTime", quantity.parse_duration, cpu_time)),
        memory_bytes=0
        if memory is None
        else _parsed("spec.limits.memory", quantity.parse_memory, memory),
        processes=_whole(limits.get("processes", 0)),
        open_files=_whole(limits.get("openFiles", 0)),
        file_size_bytes=0
        if file_size is None
        else _parsed("spec.limits.fileSize", quantity.parse_memory, file_size),
    )


def _transfers(entries: Any) -> tuple[models.FileTransfer, ...]:
    return tuple(models.FileTransfer(e["source"], e["destination"]) for e in entries)


def _retry(retry: Mapping[str, Any]) -> models.RetryPolicy:
    """The retry policy; unset fields take the CRD's defaults, which RetryPolicy's equal."""
    defaults = models.RetryPolicy()
    backoff, max_backoff = retry.get("backoff"), retry.get("maxBackoff")
    return models.RetryPolicy(
        max_task_retries=_whole(retry.get("maxTaskRetries", defaults.max_task_retries)),
        max_infra_retries=_whole(retry.get("maxInfraRetries", defaults.max_infra_retries)),
        backoff_seconds=defaults.backoff_seconds
        if backoff is None
        else _parsed("spec.retry.backoff", quantity.parse_duration, backoff),
        max_backoff_seconds=defaults.max_backoff_seconds
        if max_backoff is None
        else _parsed("spec.retry.maxBackoff", quantity.parse_duration, max_backoff),
    )
