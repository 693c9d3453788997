"""Checks a submission before it is accepted, naming each bad field and how to fix it."""

from __future__ import annotations

import re

from vahana.core import models

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    if need.cpu_cores < 0:
        bad("resources.cpu", f"must be ≥ 0, got {need.cpu_cores:g}")
    if need.memory_bytes < 0:
        bad("resources.memory", f"must be ≥ 0, got {need.memory_bytes}")
    if need.gpus < 0:
        bad("resources.gpu", f"must be ≥ 0, got {need.gpus}")
    if spec.timeout_seconds < 0:
        bad("timeout", "must be ≥ 0 (0: the worker's default)")
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
    if policy.backoff_seconds < 0 or policy.max_backoff_seconds < 0:
        bad("retry.backoff", "must be ≥ 0")
    return found
