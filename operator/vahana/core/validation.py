"""Checks a submission before it is accepted, naming each bad field and how to fix it."""

from __future__ import annotations

import math
import re

from vahana.core import models

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


def problems(submission: models.Submission, *, where: str = "") -> list[str]:
    """Every problem of the submission as `path: what is wrong — how to fix it`."""
    spec, found = submission.spec, []
    prefix = f"{where}." if where else ""

    def bad(field: str, message: str) -> None:
        found.append(f"{prefix}{field}: {message}")

    if not spec.command.strip():
        bad("command", "must not be empty — give the shell command to run")
    if "\x00" in spec.command:
        bad("command", "must not contain NUL bytes")
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
    for name in spec.environment:
        if not _ENV_NAME.match(name):
            bad(f"env.{name}", "is not a valid variable name — use letters, digits and _")
    for label, files in (("inputFiles", spec.input_files), ("outputFiles", spec.output_files)):
        for index, transfer in enumerate(files):
            if not transfer.source:
                bad(f"{label}[{index}].source", "must not be empty")
            if not transfer.destination:
                bad(f"{label}[{index}].destination", "must not be empty")
    policy = submission.retry
    if policy.max_task_retries < 0:
        bad("retry.maxTaskRetries", "must be ≥ 0")
    if policy.max_infra_retries < 0:
        bad("retry.maxInfraRetries", "must be ≥ 0")
    if not (0 <= policy.backoff_seconds < math.inf and 0 <= policy.max_backoff_seconds < math.inf):
        bad("retry.backoff", "must be ≥ 0")
    return found
