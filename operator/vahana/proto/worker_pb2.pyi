import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATUS_UNSPECIFIED: _ClassVar[WorkerStatus]
    AVAILABLE: _ClassVar[WorkerStatus]
    BUSY: _ClassVar[WorkerStatus]
    DRAINING: _ClassVar[WorkerStatus]
    UNHEALTHY: _ClassVar[WorkerStatus]
    TERMINATED: _ClassVar[WorkerStatus]

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    PENDING: _ClassVar[TaskStatus]
    ASSIGNED: _ClassVar[TaskStatus]
    RUNNING: _ClassVar[TaskStatus]
    COMPLETED: _ClassVar[TaskStatus]
    FAILED: _ClassVar[TaskStatus]
    CANCELLED: _ClassVar[TaskStatus]
    TIMED_OUT: _ClassVar[TaskStatus]
    UPSTREAM_FAILED: _ClassVar[TaskStatus]

class FailureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_KIND_UNSPECIFIED: _ClassVar[FailureKind]
    TASK_ERROR: _ClassVar[FailureKind]
    INFRASTRUCTURE: _ClassVar[FailureKind]
    STAGING: _ClassVar[FailureKind]
WORKER_STATUS_UNSPECIFIED: WorkerStatus
AVAILABLE: WorkerStatus
BUSY: WorkerStatus
DRAINING: WorkerStatus
UNHEALTHY: WorkerStatus
TERMINATED: WorkerStatus
TASK_STATUS_UNSPECIFIED: TaskStatus
PENDING: TaskStatus
ASSIGNED: TaskStatus
RUNNING: TaskStatus
COMPLETED: TaskStatus
FAILED: TaskStatus
CANCELLED: TaskStatus
TIMED_OUT: TaskStatus
UPSTREAM_FAILED: TaskStatus
FAILURE_KIND_UNSPECIFIED: FailureKind
TASK_ERROR: FailureKind
INFRASTRUCTURE: FailureKind
STAGING: FailureKind

class ResourceRequirements(_message.Message):
    __slots__ = ("cpu_cores", "memory_bytes", "gpus", "labels", "preferred_labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class PreferredLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_LABELS_FIELD_NUMBER: _ClassVar[int]
    cpu_cores: float
    memory_bytes: int
    gpus: int
    labels: _containers.ScalarMap[str, str]
    preferred_labels: _containers.ScalarMap[str, str]
    def __init__(self, cpu_cores: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., gpus: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., preferred_labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class FileTransfer(_message.Message):
    __slots__ = ("source", "destination")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    source: str
    destination: str
    def __init__(self, source: _Optional[str] = ..., destination: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "command", "input_files", "output_files", "environment", "requirements", "priority", "deadline", "timeout", "attempt", "name", "experiment_id", "limits")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    INPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    id: str
    command: str
    input_files: _containers.RepeatedCompositeFieldContainer[FileTransfer]
    output_files: _containers.RepeatedCompositeFieldContainer[FileTransfer]
    environment: _containers.ScalarMap[str, str]
    requirements: ResourceRequirements
    priority: int
    deadline: _timestamp_pb2.Timestamp
    timeout: _duration_pb2.Duration
    attempt: int
    name: str
    experiment_id: str
    limits: ResourceLimits
    def __init__(self, id: _Optional[str] = ..., command: _Optional[str] = ..., input_files: _Optional[_Iterable[_Union[FileTransfer, _Mapping]]] = ..., output_files: _Optional[_Iterable[_Union[FileTransfer, _Mapping]]] = ..., environment: _Optional[_Mapping[str, str]] = ..., requirements: _Optional[_Union[ResourceRequirements, _Mapping]] = ..., priority: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., attempt: _Optional[int] = ..., name: _Optional[str] = ..., experiment_id: _Optional[str] = ..., limits: _Optional[_Union[ResourceLimits, _Mapping]] = ...) -> None: ...

class ResourceLimits(_message.Message):
    __slots__ = ("cpu_seconds", "memory_bytes", "processes", "open_files", "file_size_bytes")
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    OPEN_FILES_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpu_seconds: int
    memory_bytes: int
    processes: int
    open_files: int
    file_size_bytes: int
    def __init__(self, cpu_seconds: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., processes: _Optional[int] = ..., open_files: _Optional[int] = ..., file_size_bytes: _Optional[int] = ...) -> None: ...

class WorkerCapabilities(_message.Message):
    __slots__ = ("cpu_cores", "memory_bytes", "gpus", "labels", "max_concurrent_tasks", "allocation_ends_at", "prefetch")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_TASKS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    PREFETCH_FIELD_NUMBER: _ClassVar[int]
    cpu_cores: float
    memory_bytes: int
    gpus: int
    labels: _containers.ScalarMap[str, str]
    max_concurrent_tasks: int
    allocation_ends_at: _timestamp_pb2.Timestamp
    prefetch: int
    def __init__(self, cpu_cores: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., gpus: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., max_concurrent_tasks: _Optional[int] = ..., allocation_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prefetch: _Optional[int] = ...) -> None: ...

class WorkerMetrics(_message.Message):
    __slots__ = ("cpu_usage", "memory_usage", "active_tasks", "timestamp", "memory_used_bytes", "load_average")
    CPU_USAGE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USAGE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TASKS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOAD_AVERAGE_FIELD_NUMBER: _ClassVar[int]
    cpu_usage: float
    memory_usage: float
    active_tasks: int
    timestamp: _timestamp_pb2.Timestamp
    memory_used_bytes: int
    load_average: float
    def __init__(self, cpu_usage: _Optional[float] = ..., memory_usage: _Optional[float] = ..., active_tasks: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., memory_used_bytes: _Optional[int] = ..., load_average: _Optional[float] = ...) -> None: ...

class TaskLease(_message.Message):
    __slots__ = ("task_id", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "capabilities", "experiment_id", "compute_resource_id", "hostname", "pool", "version", "running_tasks", "pid")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASKS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    capabilities: WorkerCapabilities
    experiment_id: str
    compute_resource_id: str
    hostname: str
    pool: str
    version: str
    running_tasks: _containers.RepeatedCompositeFieldContainer[TaskLease]
    pid: int
    def __init__(self, worker_id: _Optional[str] = ..., capabilities: _Optional[_Union[WorkerCapabilities, _Mapping]] = ..., experiment_id: _Optional[str] = ..., compute_resource_id: _Optional[str] = ..., hostname: _Optional[str] = ..., pool: _Optional[str] = ..., version: _Optional[str] = ..., running_tasks: _Optional[_Iterable[_Union[TaskLease, _Mapping]]] = ..., pid: _Optional[int] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("success", "message", "heartbeat_interval", "revoked_tasks", "token", "token_expires_at")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    REVOKED_TASKS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    heartbeat_interval: _duration_pb2.Duration
    revoked_tasks: _containers.RepeatedCompositeFieldContainer[TaskLease]
    token: str
    token_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., revoked_tasks: _Optional[_Iterable[_Union[TaskLease, _Mapping]]] = ..., token: _Optional[str] = ..., token_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PollForTaskRequest(_message.Message):
    __slots__ = ("worker_id", "max_tasks", "wait")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    max_tasks: int
    wait: _duration_pb2.Duration
    def __init__(self, worker_id: _Optional[str] = ..., max_tasks: _Optional[int] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class PollForTaskResponse(_message.Message):
    __slots__ = ("task", "has_task", "more_tasks", "cancel_tasks", "drain")
    TASK_FIELD_NUMBER: _ClassVar[int]
    HAS_TASK_FIELD_NUMBER: _ClassVar[int]
    MORE_TASKS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TASKS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    task: Task
    has_task: bool
    more_tasks: _containers.RepeatedCompositeFieldContainer[Task]
    cancel_tasks: _containers.RepeatedCompositeFieldContainer[TaskLease]
    drain: bool
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., has_task: _Optional[bool] = ..., more_tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., cancel_tasks: _Optional[_Iterable[_Union[TaskLease, _Mapping]]] = ..., drain: _Optional[bool] = ...) -> None: ...

class UpdateTaskStatusRequest(_message.Message):
    __slots__ = ("task_id", "worker_id", "status", "attempt", "exit_code", "message", "output_tail", "timestamp", "failure_kind", "output_files", "output_log")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FAILURE_KIND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_LOG_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    worker_id: str
    status: TaskStatus
    attempt: int
    exit_code: int
    message: str
    output_tail: str
    timestamp: _timestamp_pb2.Timestamp
    failure_kind: FailureKind
    output_files: _containers.RepeatedScalarFieldContainer[str]
    output_log: str
    def __init__(self, task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., attempt: _Optional[int] = ..., exit_code: _Optional[int] = ..., message: _Optional[str] = ..., output_tail: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failure_kind: _Optional[_Union[FailureKind, str]] = ..., output_files: _Optional[_Iterable[str]] = ..., output_log: _Optional[str] = ...) -> None: ...

class UpdateTaskStatusResponse(_message.Message):
    __slots__ = ("success", "message", "cancel")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    cancel: bool
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ..., cancel: _Optional[bool] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "metrics", "status", "running_tasks")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASKS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    metrics: WorkerMetrics
    status: WorkerStatus
    running_tasks: _containers.RepeatedCompositeFieldContainer[TaskLease]
    def __init__(self, worker_id: _Optional[str] = ..., metrics: _Optional[_Union[WorkerMetrics, _Mapping]] = ..., status: _Optional[_Union[WorkerStatus, str]] = ..., running_tasks: _Optional[_Iterable[_Union[TaskLease, _Mapping]]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("success", "message", "cancel_tasks", "drain", "reregister")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TASKS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    REREGISTER_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    cancel_tasks: _containers.RepeatedCompositeFieldContainer[TaskLease]
    drain: bool
    reregister: bool
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ..., cancel_tasks: _Optional[_Iterable[_Union[TaskLease, _Mapping]]] = ..., drain: _Optional[bool] = ..., reregister: _Optional[bool] = ...) -> None: ...

class UpdateWorkerStatusRequest(_message.Message):
    __slots__ = ("worker_id", "status", "reason")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    status: WorkerStatus
    reason: str
    def __init__(self, worker_id: _Optional[str] = ..., status: _Optional[_Union[WorkerStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateWorkerStatusResponse(_message.Message):
    __slots__ = ("success", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class BatchUpdateTaskStatusRequest(_message.Message):
    __slots__ = ("worker_id", "updates", "max_tasks")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    updates: _containers.RepeatedCompositeFieldContainer[UpdateTaskStatusRequest]
    max_tasks: int
    def __init__(self, worker_id: _Optional[str] = ..., updates: _Optional[_Iterable[_Union[UpdateTaskStatusRequest, _Mapping]]] = ..., max_tasks: _Optional[int] = ...) -> None: ...

class UpdateResult(_message.Message):
    __slots__ = ("task_id", "attempt", "accepted", "message", "cancel")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    accepted: bool
    message: str
    cancel: bool
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., accepted: _Optional[bool] = ..., message: _Optional[str] = ..., cancel: _Optional[bool] = ...) -> None: ...

class BatchUpdateTaskStatusResponse(_message.Message):
    __slots__ = ("success", "results", "tasks", "cancel_tasks", "drain")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TASKS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    success: bool
    results: _containers.RepeatedCompositeFieldContainer[UpdateResult]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    cancel_tasks: _containers.RepeatedCompositeFieldContainer[TaskLease]
    drain: bool
    def __init__(self, success: _Optional[bool] = ..., results: _Optional[_Iterable[_Union[UpdateResult, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., cancel_tasks: _Optional[_Iterable[_Union[TaskLease, _Mapping]]] = ..., drain: _Optional[bool] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("pool", "status")
    POOL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    pool: str
    status: WorkerStatus
    def __init__(self, pool: _Optional[str] = ..., status: _Optional[_Union[WorkerStatus, str]] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "status", "capabilities", "metrics", "pool", "hostname", "active_task_ids", "registered_at", "last_heartbeat", "experiment_id", "compute_resource_id", "status_message")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    status: WorkerStatus
    capabilities: WorkerCapabilities
    metrics: WorkerMetrics
    pool: str
    hostname: str
    active_task_ids: _containers.RepeatedScalarFieldContainer[str]
    registered_at: _timestamp_pb2.Timestamp
    last_heartbeat: _timestamp_pb2.Timestamp
    experiment_id: str
    compute_resource_id: str
    status_message: str
    def __init__(self, worker_id: _Optional[str] = ..., status: _Optional[_Union[WorkerStatus, str]] = ..., capabilities: _Optional[_Union[WorkerCapabilities, _Mapping]] = ..., metrics: _Optional[_Union[WorkerMetrics, _Mapping]] = ..., pool: _Optional[str] = ..., hostname: _Optional[str] = ..., active_task_ids: _Optional[_Iterable[str]] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., experiment_id: _Optional[str] = ..., compute_resource_id: _Optional[str] = ..., status_message: _Optional[str] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class TaskOutputChunk(_message.Message):
    __slots__ = ("task_id", "attempt", "offset", "data", "final")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    offset: int
    data: bytes
    final: bool
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., final: _Optional[bool] = ...) -> None: ...

class AppendTaskOutputRequest(_message.Message):
    __slots__ = ("worker_id", "chunks")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    chunks: _containers.RepeatedCompositeFieldContainer[TaskOutputChunk]
    def __init__(self, worker_id: _Optional[str] = ..., chunks: _Optional[_Iterable[_Union[TaskOutputChunk, _Mapping]]] = ...) -> None: ...

class AppendTaskOutputResponse(_message.Message):
    __slots__ = ("held",)
    HELD_FIELD_NUMBER: _ClassVar[int]
    held: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, held: _Optional[_Iterable[int]] = ...) -> None: ...
