"""Task arrays: one Task, N instances — their specs, and the one status they add up to.

`spec.array: {count: N}` (or `{parameters: [{...}, ...]}`, one instance per parameter set)
makes N instances of the task. Instance i is named `NAME[i]`, has `VAHANA_ARRAY_INDEX=i` and
its parameters in its environment, and is a task of its own in the store (its own attempts,
retries, worker); the Task object shows their sum (`summarize`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence

from vahana.core import models

INDEX_VARIABLE = "VAHANA_ARRAY_INDEX"
COUNT_VARIABLE = "VAHANA_ARRAY_COUNT"
FAILED_INDICES_SHOWN = 100
"""Failed indices listed on a status at most (the count is always whole)."""

INDICES_LISTED = 20
"""Indices written out in one line of text (a status message, a table cell)."""


def listed(indices: Sequence[int], most: int = INDICES_LISTED) -> str:
    """`3, 7, 12 …`: the first `most` indices, "…" if there are more; "" for none."""
    return ", ".join(map(str, indices[:most])) + (" …" if len(indices) > most else "")


_NAME = re.compile(r"^(?P<array>.+)\[(?P<index>[0-9]+)\]$")


def instance_name(array: str, index: int) -> str:
    return f"{array}[{index}]"


def parse_instance_name(name: str) -> tuple[str, int] | None:
    """("NAME", i) for an instance's name `NAME[i]`; None for any other name."""
    match = _NAME.match(name)
    return (match["array"], int(match["index"])) if match else None


def expand(submission: models.Submission) -> list[models.Submission]:
    """The submission itself, or the instances of its array in index order; an instance's
    key is the array's key + `/i`."""
    array = submission.array
    if array is None:
        return [submission]
    spec = submission.spec
    base_env = {**spec.environment, COUNT_VARIABLE: str(array.count)}
    instances: list[models.Submission] = []
    for index in range(array.count):
        environment = dict(base_env)
        if array.parameters:
            environment.update(array.parameters[index])
        environment[INDEX_VARIABLE] = str(index)
        instances.append(
            dataclasses.replace(
                submission,
                spec=dataclasses.replace(
                    spec,
                    name=instance_name(spec.name, index),
                    environment=environment,
                    array=spec.name,
                    index=index,
                ),
                key=f"{submission.key}/{index}" if submission.key else "",
                array=None,
            )
        )
    return instances


@dataclasses.dataclass(frozen=True)
class Summary:
    """What an array's instances add up to."""

    total: int
    counts: Mapping[models.TaskPhase, int]
    failed_indices: tuple[int, ...]
    """Indices of the instances that ended without completing, lowest first."""

    @property
    def finished(self) -> int:
        return sum(n for phase, n in self.counts.items() if phase.is_final)

    @property
    def completed(self) -> int:
        return self.counts.get(models.TaskPhase.COMPLETED, 0)

    @property
    def progress(self) -> str:
        """Instances finished of all, for people: "9,812/10,000"."""
        return f"{self.finished:,}/{self.total:,}"

    @property
    def phase(self) -> models.TaskPhase:
        """The array's phase: final once every instance is (COMPLETED only if all did,
        CANCELLED if any was cancelled and none failed, else FAILED); RUNNING while any
        runs or has finished; ASSIGNED or PENDING before."""
        P = models.TaskPhase
        if self.finished == self.total:
            if self.completed == self.total:
                return P.COMPLETED
            failed = sum(self.counts.get(p, 0) for p in (P.FAILED, P.TIMED_OUT, P.UPSTREAM_FAILED))
            return P.FAILED if failed else P.CANCELLED
        if self.counts.get(P.RUNNING, 0) or self.finished:
            return P.RUNNING
        return P.ASSIGNED if self.counts.get(P.ASSIGNED, 0) else P.PENDING


def summarize(instances: Iterable[models.TaskRecord]) -> Summary:
    counts: dict[models.TaskPhase, int] = {}
    failed: list[int] = []
    total = 0
    for task in instances:
        total += 1
        counts[task.phase] = counts.get(task.phase, 0) + 1
        if task.is_final and task.phase != models.TaskPhase.COMPLETED:
            failed.append(task.spec.index)
    return Summary(total, counts, tuple(sorted(failed)))


def check_parameters(parameters: Sequence[Mapping[str, object]]) -> list[tuple[str, str]]:
    """(field path, problem) for parameter sets whose names are not environment names."""
    problems: list[tuple[str, str]] = []
    for number, values in enumerate(parameters):
        for name in values:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                problems.append(
                    (f"spec.array.parameters[{number}].{name}", "not an environment name")
                )
            elif name in (INDEX_VARIABLE, COUNT_VARIABLE):
                problems.append((f"spec.array.parameters[{number}].{name}", "set by the array"))
    return problems
