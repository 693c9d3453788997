"""Plain records of the scheduler: task specs, task and worker state, in the core's own types.

The protobuf messages are the wire format; these are what the logic and the store work on.
Times are floats of seconds since the epoch, taken from an injected clock.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from vahana.core import quarantine


class TaskPhase(enum.StrEnum):
    """A task's status; the names are those of `worker.TaskStatus`."""

    PENDING = "PENDING"
    ASSIGNED = "ASSIGNED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    """Never ran: a task it depends on (`core.dependencies`) ended without completing."""

    @property
    def is_final(self) -> bool:
        return self in FINAL_PHASES

    @property
    def holds_lease(self) -> bool:
        return self in (TaskPhase.ASSIGNED, TaskPhase.RUNNING)


FINAL_PHASES = frozenset(
    {
        TaskPhase.COMPLETED,
        TaskPhase.FAILED,
        TaskPhase.CANCELLED,
        TaskPhase.TIMED_OUT,
        TaskPhase.UPSTREAM_FAILED,
    }
)


class WorkerState(enum.StrEnum):
    """A worker's status; the names are those of `worker.WorkerStatus`."""

    AVAILABLE = "AVAILABLE"
    BUSY = "BUSY"
    DRAINING = "DRAINING"
    UNHEALTHY = "UNHEALTHY"
    TERMINATED = "TERMINATED"


class FailureKind(enum.StrEnum):
    """Which retry budget an attempt's failure spends."""

    TASK_ERROR = "TASK_ERROR"
    INFRASTRUCTURE = "INFRASTRUCTURE"
    STAGING = "STAGING"


@dataclasses.dataclass(frozen=True)
class Resources:
    """What a task needs or a worker offers. Labels must all match; preferred ones only rank."""

    cpu_cores: float = 0.0
    memory_bytes: int = 0
    gpus: int = 0
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    preferred_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def shape(self) -> tuple[float, int, int, tuple[tuple[str, str], ...]]:
        """A hashable key: tasks of one shape fit exactly the same workers."""
        return (self.cpu_cores, self.memory_bytes, self.gpus, tuple(sorted(self.labels.items())))


@dataclasses.dataclass(frozen=True)
class Limits:
    """Hard limits on one task attempt, enforced by the worker; zero: the worker's default."""

    cpu_seconds: int = 0
    """CPU time of each process of the task, seconds."""
    memory_bytes: int = 0
    """Address space of each process, bytes."""
    processes: int = 0
    """Processes of the task's user at once."""
    open_files: int = 0
    """Open file descriptors of each process."""
    file_size_bytes: int = 0
    """Largest file a process may write, bytes."""


@dataclasses.dataclass(frozen=True)
class FileTransfer:
    source: str
    destination: str


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often a task is rerun, on two separate budgets, and how long it waits in between."""

    max_task_retries: int = 0
    """Reruns after the command failed (non-zero exit, timeout, staging error)."""
    max_infra_retries: int = 3
    """Reruns after the worker was lost, drained away or reached its walltime."""
    backoff_seconds: float = 1.0
    """Delay before the first rerun; doubled for each further rerun."""
    max_backoff_seconds: float = 60.0


class Condition(enum.StrEnum):
    """When a dependency lets its dependent run (the names are SLURM's)."""

    AFTER_OK = "afterok"
    """Once the upstream completed; if it ends otherwise, the dependent ends UPSTREAM_FAILED."""
    AFTER_ANY = "afterany"
    """Once the upstream ended, however it ended."""


@dataclasses.dataclass(frozen=True)
class Dependency:
    """One entry of `spec.dependsOn`: a task (or array) of the same namespace, by name."""

    name: str
    condition: Condition = Condition.AFTER_OK
    same_index: bool = False
    """Between two arrays: instance i waits for instance i only (else for every instance)."""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What to run: the user's part of a task, immutable once submitted."""

    name: str
    command: str
    input_files: tuple[FileTransfer, ...] = ()
    output_files: tuple[FileTransfer, ...] = ()
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    resources: Resources = dataclasses.field(default_factory=Resources)
    priority: int = 0
    deadline: float | None = None
    """Seconds since the epoch; earlier deadlines run first among equal priorities."""
    timeout_seconds: float = 0.0
    """Zero: the worker's own --task-timeout applies."""
    experiment_id: str = ""
    limits: Limits = dataclasses.field(default_factory=Limits)
    queue: str = ""
    """The queue it is dispatched from (`core.fairshare`); empty: its namespace's."""
    array: str = ""
    """The array it is an instance of (`core.arrays`: the Task's name); empty: none."""
    index: int = 0
    """Its index in that array."""
    depends_on: tuple[Dependency, ...] = ()
    """What it waits for (`core.dependencies`), as the user named it."""


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """A task array (`core.arrays`): how many instances, and each one's parameters."""

    count: int
    parameters: tuple[Mapping[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    """What every WorkerPool type shares, parsed from its spec with the CRD's defaults
    (manifests/pools.py `pool_spec`): no default is written here."""

    type: str
    min_workers: int
    max_workers: int
    tasks_per_worker: int
    idle_timeout_seconds: float
    drain_timeout_seconds: float
    walltime_seconds: float | None
    """Longest life of one worker; None: unlimited."""
    heartbeat_interval_seconds: float | None
    """None: the scheduler's own interval."""


@dataclasses.dataclass(frozen=True)
class Submission:
    """A task as a client hands it in: spec plus where and how to run it."""

    spec: TaskSpec
    key: str = ""
    """Idempotency key (a Task resource's uid); empty: every submission is new."""
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    pool: str = ""
    namespace: str = ""
    array: ArraySpec | None = None
    """Set: the submission stands for the array's instances (`core.arrays.expand`)."""


@dataclasses.dataclass(slots=True)
class TaskRecord:
    """A task's whole state: what the store keeps and the scheduler works on."""

    id: str
    spec: TaskSpec
    created_at: float
    seq: int
    """Submission order; breaks ties in the queue and survives restarts."""
    key: str = ""
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    pool: str = ""
    namespace: str = ""
    phase: TaskPhase = TaskPhase.PENDING
    attempt: int = 0
    """Attempt number of the current (or last) lease; 0 before the first dispatch."""
    worker_id: str = ""
    exit_code: int | None = None
    message: str = ""
    output_tail: str = ""
    pending_reason: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    task_failures: int = 0
    infra_failures: int = 0
    not_before: float = 0.0
    """A retried task waits for its backoff until this time."""
    cancel_requested: bool = False
    assigned_at: float | None = None
    upstream: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """Each dependency's name → the ids of the tasks it stands for (resolved at submission,
    fixed since; `core.dependencies.resolve`)."""
    output_log: str = ""
    """Where the latest attempt's whole output was kept in its pool's storage (a URL its
    worker reported); "" when the pool keeps none there, or before that attempt ended."""

    @property
    def is_final(self) -> bool:
        return self.phase.is_final


@dataclasses.dataclass(frozen=True)
class WorkerMetrics:
    cpu_usage: float = 0.0
    memory_usage: float = 0.0
    active_tasks: int = 0
    memory_used_bytes: int = 0
    load_average: float = 0.0
    timestamp: float = 0.0


@dataclasses.dataclass(slots=True)
class WorkerRecord:
    """A registered worker and what the scheduler knows of it."""

    id: str
    capacity: Resources
    max_tasks: int
    registered_at: float
    last_seen: float
    pool: str = ""
    hostname: str = ""
    state: WorkerState = WorkerState.AVAILABLE
    allocation_ends_at: float | None = None
    experiment_id: str = ""
    compute_resource_id: str = ""
    metrics: WorkerMetrics = dataclasses.field(default_factory=WorkerMetrics)
    last_heartbeat: float | None = None
    unhealthy_since: float | None = None
    leases: dict[str, int] = dataclasses.field(default_factory=dict)
    """Task id → attempt of every task the worker holds."""
    idle_since: float | None = None
    """When the worker last became idle (no task); None while it holds one."""
    prefetch: int = 0
    """Tasks it may hold beyond `max_tasks`, queued until a slot frees (from its registration;
    not stored: 0 after a scheduler restart until it registers again)."""
    quarantine_reason: str = ""
    """Set when it was quarantined (`core.quarantine`): UNHEALTHY, no more tasks, refused if
    it registers again under this id."""
    streak: quarantine.Streak = dataclasses.field(default_factory=quarantine.Streak)
    """Its current run of infrastructure failures (not stored)."""


@dataclasses.dataclass(slots=True)
class AttemptRecord:
    """One dispatch of a task to a worker, and how it ended."""

    task_id: str
    attempt: int
    worker_id: str
    assigned_at: float
    phase: TaskPhase = TaskPhase.ASSIGNED
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    failure_kind: FailureKind | None = None
    message: str = ""
