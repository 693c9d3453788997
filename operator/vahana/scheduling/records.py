"""Inputs and outputs of the scheduler service, independent of the wire format."""

from __future__ import annotations

import dataclasses

from vahana.core import models, options, quarantine

Lease = tuple[str, int]
"""(task id, attempt)"""


@dataclasses.dataclass(frozen=True)
class SchedulerSettings:
    heartbeat_interval_seconds: float = options.setting(
        30.0, options.Flag("--heartbeat-interval", "worker heartbeat interval", metavar="SECONDS")
    )
    """How often workers are told to send heartbeats."""
    missed_heartbeats: int = options.setting(
        3, options.Flag("--missed-heartbeats", "missed heartbeats before a worker is unhealthy")
    )
    """A worker silent for this many intervals is UNHEALTHY and its tasks are requeued."""
    removal_after_unhealthy_seconds: float = 60.0
    """An UNHEALTHY worker that stays silent this long is removed."""
    assignment_grace_seconds: float = 0.0
    """A task handed out but missing from the worker's heartbeats for this long is requeued.
    Zero: two heartbeat intervals."""
    recovery_grace_seconds: float = 0.0
    """After a restart, how long known workers have to reconnect before they count as lost
    and their tasks are requeued. Zero (and never less than): the silence limit plus one
    heartbeat interval, `heartbeat_interval_seconds × (missed_heartbeats + 1)` — 120 s by
    default, 4 s at 1 s × 3. The rule that makes it enough: a worker that cannot reach the
    scheduler tries again at least once per heartbeat interval (its backoff, circuit breaker
    and gRPC reconnect backoff are capped by its interval, kept within 0.5–30 s), so a live
    worker is heard within an interval or two of the restart, well inside the grace; only a
    dead one is still silent at its end. The scheduler was away, not the workers: their
    running tasks should not be rerun."""

    submit_chunk_tasks: int = 100
    """A submission is decided in chunks of this many tasks (a few milliseconds each), so that
    the calls of others (heartbeats, polls) are answered between two chunks of a large one;
    the writer commits the chunks waiting together."""
    commit_group_rows: int = 2_000
    """Rows one group commit writes at most (a larger chunk is a commit of its own)."""

    quarantine_failures: int = 5
    """A worker whose last this many attempts all failed in the worker (infrastructure
    failures it reported itself) is quarantined (`core.quarantine`); 0: never."""
    quarantine_window_seconds: float = 60.0
    """…if they all came within this many seconds."""
    quarantine_seconds: float = 600.0
    """How long a quarantined worker is shown UNHEALTHY with its reason, and refused under its
    id, before it is removed (whatever it says meanwhile, TERMINATED included)."""

    fair_share_half_life_seconds: float = 3600.0
    """Half-life of the queues' usage in the fair share (`core.fairshare`): core-seconds used
    this long ago weigh half as much as those used now."""
    usage_save_interval_seconds: float = 30.0
    """How often, at most, the queues' decayed usage is written to the store (the queues whose
    usage changed, from the periodic health check; and always when the scheduler stops), so
    that a restart keeps it. A crash loses what the queues used since the last write: at most
    this long (plus a health-check tick) of their running cores."""

    @property
    def quarantine(self) -> quarantine.QuarantinePolicy:
        return quarantine.QuarantinePolicy(self.quarantine_failures, self.quarantine_window_seconds)

    @property
    def silence_limit_seconds(self) -> float:
        return self.heartbeat_interval_seconds * self.missed_heartbeats

    @property
    def recovery_grace(self) -> float:
        """Seconds known workers get after a restart (`recovery_grace_seconds`)."""
        return max(
            self.recovery_grace_seconds,
            self.silence_limit_seconds + self.heartbeat_interval_seconds,
        )

    @property
    def assignment_grace(self) -> float:
        return self.assignment_grace_seconds or 2 * self.heartbeat_interval_seconds


@dataclasses.dataclass(frozen=True)
class Registration:
    worker_id: str
    capacity: models.Resources
    max_tasks: int
    pool: str = ""
    hostname: str = ""
    allocation_ends_at: float | None = None
    experiment_id: str = ""
    compute_resource_id: str = ""
    running: tuple[Lease, ...] = ()
    prefetch: int = 0
    """Tasks the worker may hold queued behind its running ones."""


@dataclasses.dataclass(frozen=True)
class StatusReport:
    task_id: str
    attempt: int
    phase: models.TaskPhase
    exit_code: int | None = None
    message: str = ""
    output_tail: str = ""
    failure_kind: models.FailureKind | None = None
    timestamp: float | None = None
    output_log: str = ""
    """Where the worker kept the attempt's whole output in the pool's storage, if it did."""


@dataclasses.dataclass(frozen=True)
class ReportResult:
    task_id: str
    attempt: int
    accepted: bool
    message: str = ""
    cancel: bool = False
    stale: bool = False
    """True when refused because the attempt is not (or no longer) the current one."""


@dataclasses.dataclass
class PollResult:
    tasks: list[models.TaskRecord] = dataclasses.field(default_factory=list)
    cancels: list[Lease] = dataclasses.field(default_factory=list)
    drain: bool = False

    def __bool__(self) -> bool:
        return bool(self.tasks or self.cancels or self.drain)


@dataclasses.dataclass
class HeartbeatResult:
    cancels: list[Lease] = dataclasses.field(default_factory=list)
    drain: bool = False
    reregister: bool = False


class WorkerQuarantined(RuntimeError):
    """A quarantined worker registered again under its id; the message says why it was."""


class UnknownWorker(LookupError):
    """The worker is not registered (or was given up on): it must register again."""


class UnknownTask(LookupError):
    pass


class AmbiguousTaskName(UnknownTask):
    """More than one task has the name asked for; the message lists them by id."""


class RefusedDependencies(ValueError):
    """A submission whose dependencies cannot be: unknown names, cycles (each named)."""

    def __init__(self, problems: list[str], unknown: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.unknown = unknown
        """The names that are no task of the submission or of the store."""
