import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import worker_pb2 as _worker_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetryPolicy(_message.Message):
    __slots__ = ("max_task_retries", "max_infra_retries", "backoff", "max_backoff")
    MAX_TASK_RETRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_INFRA_RETRIES_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    max_task_retries: int
    max_infra_retries: int
    backoff: _duration_pb2.Duration
    max_backoff: _duration_pb2.Duration
    def __init__(self, max_task_retries: _Optional[int] = ..., max_infra_retries: _Optional[int] = ..., backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TaskSubmission(_message.Message):
    __slots__ = ("key", "spec", "retry", "pool", "namespace", "queue", "array", "index", "depends_on")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    key: str
    spec: _worker_pb2.Task
    retry: RetryPolicy
    pool: str
    namespace: str
    queue: str
    array: str
    index: int
    depends_on: _containers.RepeatedCompositeFieldContainer[Dependency]
    def __init__(self, key: _Optional[str] = ..., spec: _Optional[_Union[_worker_pb2.Task, _Mapping]] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., pool: _Optional[str] = ..., namespace: _Optional[str] = ..., queue: _Optional[str] = ..., array: _Optional[str] = ..., index: _Optional[int] = ..., depends_on: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ...) -> None: ...

class Dependency(_message.Message):
    __slots__ = ("name", "after_any", "same_index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_ANY_FIELD_NUMBER: _ClassVar[int]
    SAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_any: bool
    same_index: bool
    def __init__(self, name: _Optional[str] = ..., after_any: _Optional[bool] = ..., same_index: _Optional[bool] = ...) -> None: ...

class SubmitTasksRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSubmission]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskSubmission, _Mapping]]] = ...) -> None: ...

class SubmitTasksResponse(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("id", "name", "key", "namespace", "pool", "status", "attempt", "worker_id", "exit_code", "has_exit_code", "message", "output_tail", "pending_reason", "created_at", "started_at", "finished_at", "task_failures", "infra_failures", "spec", "retry", "duration", "queue", "array", "index", "array_status", "depends_on", "output_log")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    TASK_FAILURES_FIELD_NUMBER: _ClassVar[int]
    INFRA_FAILURES_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ARRAY_STATUS_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_LOG_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    key: str
    namespace: str
    pool: str
    status: _worker_pb2.TaskStatus
    attempt: int
    worker_id: str
    exit_code: int
    has_exit_code: bool
    message: str
    output_tail: str
    pending_reason: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    task_failures: int
    infra_failures: int
    spec: _worker_pb2.Task
    retry: RetryPolicy
    duration: _duration_pb2.Duration
    queue: str
    array: str
    index: int
    array_status: ArrayStatus
    depends_on: _containers.RepeatedCompositeFieldContainer[Dependency]
    output_log: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., key: _Optional[str] = ..., namespace: _Optional[str] = ..., pool: _Optional[str] = ..., status: _Optional[_Union[_worker_pb2.TaskStatus, str]] = ..., attempt: _Optional[int] = ..., worker_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., has_exit_code: _Optional[bool] = ..., message: _Optional[str] = ..., output_tail: _Optional[str] = ..., pending_reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_failures: _Optional[int] = ..., infra_failures: _Optional[int] = ..., spec: _Optional[_Union[_worker_pb2.Task, _Mapping]] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., queue: _Optional[str] = ..., array: _Optional[str] = ..., index: _Optional[int] = ..., array_status: _Optional[_Union[ArrayStatus, _Mapping]] = ..., depends_on: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ..., output_log: _Optional[str] = ...) -> None: ...

class ArrayStatus(_message.Message):
    __slots__ = ("total", "pending", "running", "completed", "failed", "cancelled", "failed_indices", "progress")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    FAILED_INDICES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    total: int
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int
    failed_indices: _containers.RepeatedScalarFieldContainer[int]
    progress: str
    def __init__(self, total: _Optional[int] = ..., pending: _Optional[int] = ..., running: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., failed_indices: _Optional[_Iterable[int]] = ..., progress: _Optional[str] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("status", "namespace", "limit", "ids", "page_token")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: _worker_pb2.TaskStatus
    namespace: str
    limit: int
    ids: _containers.RepeatedScalarFieldContainer[str]
    page_token: str
    def __init__(self, status: _Optional[_Union[_worker_pb2.TaskStatus, str]] = ..., namespace: _Optional[str] = ..., limit: _Optional[int] = ..., ids: _Optional[_Iterable[str]] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskInfo]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchTasksRequest(_message.Message):
    __slots__ = ("ids", "until_final")
    IDS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FINAL_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    until_final: bool
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., until_final: _Optional[bool] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelTaskResponse(_message.Message):
    __slots__ = ("cancelled", "status")
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    status: _worker_pb2.TaskStatus
    def __init__(self, cancelled: _Optional[bool] = ..., status: _Optional[_Union[_worker_pb2.TaskStatus, str]] = ...) -> None: ...

class ReadTaskOutputRequest(_message.Message):
    __slots__ = ("id", "offset", "follow")
    ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    id: str
    offset: int
    follow: bool
    def __init__(self, id: _Optional[str] = ..., offset: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...
