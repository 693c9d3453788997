"""Black-hole workers: a worker whose attempts all fail for infrastructure reasons is stopped.

A worker that cannot run anything (its working dir turned read-only, its disk is full, a
broken image) takes a task, fails it within milliseconds as an infrastructure failure and asks
for the next: left alone it drains the whole queue and spends every task's retry budget.

The rule, per worker, over the attempts it reports itself (attempts lost with a silent worker
and those it fails while draining do not count):
- A run of consecutive infrastructure failures is a *streak*; any other outcome ends it.
- The first failure of a streak spends the task's infrastructure budget as usual; the ones
  after it spend nothing while the worker is under suspicion, so a black hole cannot exhaust
  a task's budget before it is caught.
- When a streak reaches `failures` attempts within `window_seconds`, the worker is quarantined:
  it gets no more tasks, shows UNHEALTHY with the reason, and the first failure's charge is
  given back to the tasks of the streak that are still queued.
"""

from __future__ import annotations

import dataclasses

from vahana.core import models


@dataclasses.dataclass(frozen=True)
class QuarantinePolicy:
    failures: int = 5
    """Consecutive infrastructure failures of one worker that quarantine it; 0: never."""
    window_seconds: float = 60.0
    """…all within this many seconds."""


@dataclasses.dataclass(frozen=True)
class Streak:
    """A worker's current run of consecutive infrastructure failures (latest last)."""

    times: tuple[float, ...] = ()
    """When its latest failures (at most the policy's count) were reported."""
    charged_task_id: str = ""
    """The task whose failure opened the streak: the only one that spent its budget."""
    last_message: str = ""


@dataclasses.dataclass(frozen=True)
class Verdict:
    streak: Streak
    """The worker's streak after this attempt."""
    charge: bool
    """Whether the attempt spends the task's infrastructure budget."""
    quarantine_reason: str = ""
    """Set when the worker is to be quarantined: why, for its status."""
    refund: tuple[str, ...] = ()
    """Tasks whose infrastructure charge of this streak is given back (if still queued)."""


def judge(
    streak: Streak,
    *,
    task_id: str,
    kind: models.FailureKind | None,
    now: float,
    message: str,
    policy: QuarantinePolicy,
) -> Verdict:
    """The verdict on one attempt a worker reported ended (kind None: it did not fail)."""
    if kind != models.FailureKind.INFRASTRUCTURE or policy.failures <= 0:
        return Verdict(Streak(), charge=True)
    charge = not streak.times
    times = (*streak.times, now)
    times = times[-policy.failures :]  # only the latest count, and only within the window
    updated = Streak(times, task_id if charge else streak.charged_task_id, message)
    if len(times) < policy.failures:
        return Verdict(updated, charge=charge)
    if times[-1] - times[0] > policy.window_seconds:
        return Verdict(updated, charge=charge)
    reason = (
        f"quarantined: its last {len(times)} attempts failed in the worker within "
        f"{times[-1] - times[0]:.0f}s (last: {message or 'no message'})"
    )
    return Verdict(
        updated, charge=charge, quarantine_reason=reason, refund=(updated.charged_task_id,)
    )
