"""Black-hole workers: a worker whose attempts all fail for infrastructure reasons is stopped.

A worker that cannot run anything (its working dir turned read-only, its disk is full, a
broken image) takes a task, fails it within milliseconds as an infrastructure failure and asks
for the next: left alone it drains the whole queue and spends every task's retry budget.

The rule, per worker, over the attempts it reports itself (attempts lost with a silent worker
and those it fails while draining do not count):
- A run of consecutive infrastructure failures is a *streak*; any other outcome ends it.
- The first failure of a streak spends the task's infrastructure budget as usual; the ones
  after it spend nothing while the worker is under suspicion, so a black hole cannot exhaust
  the budgets of the tasks it takes before it is caught. A task that fails again within the
  streak is charged again: one task failing over and over is the task's doing, and must end
  on its budget rather than loop for free.
- When a streak reaches `failures` attempts within `window_seconds`, the worker is quarantined:
  it gets no more tasks, shows UNHEALTHY with the reason, and the charges of the streak are
  given back to their tasks if they are still queued.
"""

from __future__ import annotations

import dataclasses


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
    failed: frozenset[str] = frozenset()
    """Every task the streak failed."""
    charged: tuple[str, ...] = ()
    """The tasks whose failure in the streak spent their budget (a task once per charge)."""
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
    """Tasks whose infrastructure charges of this streak are given back, one per entry (if
    they are still queued)."""


def judge(
    streak: Streak,
    *,
    task_id: str,
    failed_in_worker: bool,
    now: float,
    message: str,
    policy: QuarantinePolicy,
) -> Verdict:
    """The verdict on one attempt a worker reported ended: `failed_in_worker` when it ended as
    an infrastructure failure, False when it completed or the task itself failed."""
    if not failed_in_worker or policy.failures <= 0:
        return Verdict(Streak(), charge=True)
    charge = not streak.times or task_id in streak.failed
    times = (*streak.times, now)[-policy.failures :]  # the latest count, within the window
    updated = Streak(
        times,
        streak.failed | {task_id},
        (*streak.charged, task_id) if charge else streak.charged,
        message,
    )
    if len(times) < policy.failures:
        return Verdict(updated, charge=charge)
    if times[-1] - times[0] > policy.window_seconds:
        return Verdict(updated, charge=charge)
    reason = (
        f"quarantined: its last {len(times)} attempts failed in the worker within "
        f"{times[-1] - times[0]:.0f}s (last: {message or 'no message'})"
    )
    return Verdict(updated, charge=charge, quarantine_reason=reason, refund=updated.charged)
