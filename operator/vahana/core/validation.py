"""Checks a submission before it is accepted, naming each bad field and how to fix it."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

from vahana.core import bounds, models

_STORAGE_URL = re.compile(r"(?i)^(s3|sftp)://")
"""Storage URLs, whose paths the scheduler checks before any worker sees them."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
Bad = Callable[[str, str], None]


def problems(submission: models.Submission, *, where: str = "") -> list[str]:
    """Every problem of the submission as `path: what is wrong — how to fix it`."""
    spec, found = submission.spec, list[str]()
    prefix = f"{where}." if where else ""

    def bad(field: str, message: str) -> None:
        found.append(f"{prefix}{field}: {message}")

    if not spec.command.strip():
        bad("command", "must not be empty — give the shell command to run")
    if "\x00" in spec.command:
        bad("command", "must not contain NUL bytes — bash cannot be given one")
    _size(bad, "command", spec.command, bounds.COMMAND_BYTES, "put a longer script in a file")
    _chars(bad, "name", spec.name, bounds.NAME_CHARS)
    _chars(bad, "namespace", submission.namespace, bounds.NAMESPACE_CHARS)
    _chars(bad, "pool", submission.pool, bounds.POOL_CHARS)
    _chars(bad, "experimentId", spec.experiment_id, bounds.EXPERIMENT_ID_CHARS)
    _chars(bad, "queue", spec.queue, bounds.NAME_CHARS)
    _chars(bad, "array", spec.array, bounds.NAME_CHARS)
    if not 0 <= spec.index < bounds.ARRAY_INSTANCES:
        bad("index", f"must be 0 to {bounds.ARRAY_INSTANCES - 1}, got {spec.index}")
    for field, labels in (
        ("workerSelector", spec.resources.labels),
        ("preferredWorkerLabels", spec.resources.preferred_labels),
    ):
        for problem in label_problems(labels, field):
            found.append(prefix + problem)
    need = spec.resources
    if not math.isfinite(need.cpu_cores):
        bad("resources.cpu", "must be a finite number")
    elif need.cpu_cores < 0:
        bad("resources.cpu", f"must be ≥ 0, got {need.cpu_cores:g}")
    if need.memory_bytes < 0:
        bad("resources.memory", f"must be ≥ 0, got {need.memory_bytes}")
    if need.gpus < 0:
        bad("resources.gpu", f"must be ≥ 0, got {need.gpus}")
    if not math.isfinite(spec.timeout_seconds) or spec.timeout_seconds < 0:
        bad("timeout", "must be ≥ 0 (0: the worker's default)")
    for field, value, most in (
        ("limits.cpuTime", spec.limits.cpu_seconds, _INT64_MAX),
        ("limits.memory", spec.limits.memory_bytes, _INT64_MAX),
        ("limits.processes", spec.limits.processes, _INT32_MAX),
        ("limits.openFiles", spec.limits.open_files, _INT32_MAX),
        ("limits.fileSize", spec.limits.file_size_bytes, _INT64_MAX),
    ):
        if value < 0:
            bad(field, f"must be ≥ 0 (0: the worker's default), got {value}")
        elif value > most:
            bad(field, f"must be at most {most}, got {value}")
    _environment_problems(bad, spec.environment)
    for label, files in (("inputFiles", spec.input_files), ("outputFiles", spec.output_files)):
        if len(files) > bounds.FILES:
            bad(label, f"at most {bounds.FILES} entries, got {len(files)} — pack them in archives")
        for index, transfer in enumerate(files[: bounds.FILES]):
            for end, path in (("source", transfer.source), ("destination", transfer.destination)):
                where = f"{label}[{index}].{end}"
                if not path:
                    bad(where, "must not be empty")
                elif "\x00" in path:
                    bad(where, "must not contain NUL bytes")
                else:
                    _size(bad, where, path, bounds.PATH_BYTES, "use a shorter path or URL")
        for index, transfer in enumerate(files[: bounds.FILES]):
            for end, problem in _path_problems(label, transfer):
                bad(f"{label}[{index}].{end}", problem)
    policy = submission.retry
    if policy.max_task_retries < 0:
        bad("retry.maxTaskRetries", "must be ≥ 0")
    if policy.max_infra_retries < 0:
        bad("retry.maxInfraRetries", "must be ≥ 0")
    if not (0 <= policy.backoff_seconds < math.inf and 0 <= policy.max_backoff_seconds < math.inf):
        bad("retry.backoff", "must be ≥ 0")
    return found


def label_problems(labels: Mapping[str, str], field: str) -> list[str]:
    """Labels a task asks for or a worker offers: bounded in number and size."""
    found = []
    if len(labels) > bounds.LABELS:
        found.append(f"{field}: at most {bounds.LABELS} labels, got {len(labels)}")
    for key, value in list(labels.items())[: bounds.LABELS]:
        shown = key if len(key) <= 40 else key[:40] + "…"
        if not key or len(key) > bounds.LABEL_CHARS:
            found.append(f"{field}.{shown}: a label key has 1–{bounds.LABEL_CHARS} characters")
        if len(value) > bounds.LABEL_CHARS:
            found.append(
                f"{field}.{shown}: a label value has at most {bounds.LABEL_CHARS} characters, "
                f"got {len(value)}"
            )
    return found


def _environment_problems(bad: Bad, environment: Mapping[str, str]) -> None:
    if len(environment) > bounds.ENV_VARS:
        bad("env", f"at most {bounds.ENV_VARS} variables, got {len(environment)}")
    total = 0
    for name, value in environment.items():
        shown = name if len(name) <= 40 else name[:40] + "…"
        if len(name) > bounds.ENV_NAME_CHARS:
            bad(f"env.{shown}", f"a name has at most {bounds.ENV_NAME_CHARS} characters")
        elif not _ENV_NAME.match(name):
            bad(f"env.{shown}", "is not a valid variable name — use letters, digits and _")
        if "\x00" in value:
            bad(f"env.{shown}", "must not contain NUL bytes")
        _size(bad, f"env.{shown}", value, bounds.ENV_VALUE_BYTES, "pass large data in a file")
        total += bounds.utf8_size(name) + bounds.utf8_size(value) + 2  # NAME=value\0
    if total > bounds.ENV_BYTES:
        bad(
            "env",
            f"at most {bounds.ENV_BYTES} bytes in all (NAME=value each), got {total} — "
            "pass large data in a file",
        )


def _size(bad: Bad, field: str, text: str, limit: int, fix: str) -> None:
    size = bounds.utf8_size(text)
    if size > limit:
        bad(field, f"at most {limit} bytes (UTF-8), got {size} — {fix}")


def _chars(bad: Bad, field: str, text: str, limit: int) -> None:
    if len(text) > limit:
        bad(field, f"at most {limit} characters, got {len(text)}")


def is_storage_url(text: str) -> bool:
    """An s3:// or sftp:// URL: a place in a pool's storage, reached by its workers."""
    return bool(_STORAGE_URL.match(text))


def storage_url_problem(url: str) -> str:
    """What makes `url` unusable as a place in storage ("" if nothing): another scheme, no
    bucket or host, or a '..' part."""
    if not is_storage_url(url):
        return "not an s3:// or sftp:// URL"
    parts = url.split("://", 1)[1].split("/")
    if not parts[0]:
        return "no bucket or host"
    if ".." in parts:
        return "'..' is not allowed in storage URLs"
    return ""


def _path_problems(label: str, transfer: models.FileTransfer) -> list[tuple[str, str]]:
    """Paths no worker can accept, refused before the task runs: the sandbox side of a
    transfer (an input's destination, an output's source) is relative and stays inside the
    sandbox, and no output destination climbs out of the worker's output directory."""
    inside = ("destination", transfer.destination) if label == "inputFiles" else None
    if label == "outputFiles":
        inside = ("source", transfer.source)
    found = []
    if inside is not None and inside[1]:
        end, path = inside
        if path.startswith("/"):
            found.append((end, "must be relative to the task's sandbox, not an absolute path"))
        elif ".." in PurePosixPath(path).parts:
            found.append((end, "must stay inside the task's sandbox: '..' is not allowed"))
    for end, where in (("source", transfer.source), ("destination", transfer.destination)):
        if is_storage_url(where) and ".." in where.split("/"):
            found.append((end, "'..' is not allowed in storage URLs"))
    if label == "outputFiles" and transfer.destination:
        location = transfer.destination.removeprefix("file://")
        if not is_storage_url(location) and ".." in PurePosixPath(location).parts:
            found.append(("destination", "must stay inside the output directory: no '..'"))
    return found
