"""An array's one Task object: its instances' phases, kept from the scheduler's events, and
the status they add up to — written when the array's phase changes and at every further tenth
of its instances finished, so 10,000 instances cost about a dozen status writes in all."""

from __future__ import annotations

import dataclasses
from typing import Any

from vahana.core import arrays, models
from vahana.k8s import resources

STEPS = 10
"""Progress is written at each further 1/STEPS of the instances finished."""


@dataclasses.dataclass
class TrackedArray:
    namespace: str
    name: str
    ttl_seconds: int | None
    phases: dict[str, models.TaskPhase]
    """Instance id → its phase as last heard."""
    indices: dict[str, int]
    counts: dict[models.TaskPhase, int] = dataclasses.field(default_factory=dict)
    """Instances by phase, kept with `phases` (an event costs O(1), not a count of all)."""
    failed: set[int] = dataclasses.field(default_factory=set)
    written: tuple[models.TaskPhase, int, bool] | None = None
    """(phase, step, any failed) of the last status written."""
    finished_at: float | None = None
    deleting: bool = False

    def __post_init__(self) -> None:
        for phase in self.phases.values():
            self.counts[phase] = self.counts.get(phase, 0) + 1

    def update(self, task: models.TaskRecord) -> bool:
        """Notes an instance's change; True if the status is due for a write."""
        before = self.phases.get(task.id)
        if before is not None:
            self.counts[before] -= 1
        self.phases[task.id] = task.phase
        self.counts[task.phase] = self.counts.get(task.phase, 0) + 1
        if task.is_final:
            self.finished_at = max(self.finished_at or 0.0, task.finished_at or 0.0)
            if task.phase != models.TaskPhase.COMPLETED:
                self.failed.add(self.indices[task.id])
        return self.mark() != self.written

    def summary(self) -> arrays.Summary:
        counts = {phase: n for phase, n in self.counts.items() if n}
        return arrays.Summary(len(self.phases), counts, tuple(sorted(self.failed)))

    def mark(self) -> tuple[models.TaskPhase, int, bool]:
        total = len(self.phases)
        finished = sum(n for phase, n in self.counts.items() if phase.is_final)
        phase = arrays.Summary(total, self.counts, ()).phase
        return phase, finished * STEPS // max(1, total), bool(self.failed)

    def status(self) -> dict[str, Any]:
        """The Task object's status, and notes it as written."""
        summary = self.summary()
        self.written = self.mark()
        P = models.TaskPhase
        counts = summary.counts
        failed = summary.failed_indices
        final = summary.phase.is_final
        message = (
            f"{len(failed):,} of {summary.total:,} instances did not complete (indices "
            f"{arrays.listed(failed)})"
            if failed
            else None
        )
        return {
            "phase": resources.PHASES[summary.phase],
            "progress": summary.progress,
            "array": {
                "total": summary.total,
                "pending": counts.get(P.PENDING, 0),
                "running": counts.get(P.ASSIGNED, 0) + counts.get(P.RUNNING, 0),
                "completed": counts.get(P.COMPLETED, 0),
                "failed": counts.get(P.FAILED, 0)
                + counts.get(P.TIMED_OUT, 0)
                + counts.get(P.UPSTREAM_FAILED, 0),
                "cancelled": counts.get(P.CANCELLED, 0),
                "failedIndices": list(failed[: arrays.FAILED_INDICES_SHOWN]),
            },
            "message": message,
            "completionTime": resources.timestamp(self.finished_at) if final else None,
        }
