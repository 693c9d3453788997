"""Fluent builders for the scheduler's records, after Kueue's `MakeWorkload(...).Queue(...).Obj()`.

    make_task("a").priority(5).cpu(2).labels(gpu="a100").submission()
    make_registration("w1").cpu(4).slots(2).registration()

Builders mutate themselves and return `self`; the final call builds an immutable record.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vahana.core import models
from vahana.scheduling import records

GiB = 2**30


class TaskBuilder:
    def __init__(self, name: str) -> None:
        self._name = name
        self._spec: dict[str, Any] = {"command": f"echo {name}"}
        self._resources: dict[str, Any] = {}
        self._submission: dict[str, Any] = {}
        self._retry: dict[str, Any] = {}

    # spec
    def command(self, command: str) -> TaskBuilder:
        self._spec["command"] = command
        return self

    def priority(self, priority: int) -> TaskBuilder:
        self._spec["priority"] = priority
        return self

    def deadline(self, deadline: float | None) -> TaskBuilder:
        self._spec["deadline"] = deadline
        return self

    def timeout(self, seconds: float) -> TaskBuilder:
        self._spec["timeout_seconds"] = seconds
        return self

    def queue(self, queue: str) -> TaskBuilder:
        self._spec["queue"] = queue
        return self

    def env(self, **environment: str) -> TaskBuilder:
        self._spec["environment"] = environment
        return self

    def after(self, *names: str, any_end: bool = False, same_index: bool = False) -> TaskBuilder:
        """Depends on `names` (afterok; afterany with `any_end`)."""
        condition = models.Condition.AFTER_ANY if any_end else models.Condition.AFTER_OK
        added = tuple(models.Dependency(n, condition, same_index) for n in names)
        self._spec["depends_on"] = self._spec.get("depends_on", ()) + added
        return self

    # resources
    def cpu(self, cores: float) -> TaskBuilder:
        self._resources["cpu_cores"] = cores
        return self

    def memory(self, size: int) -> TaskBuilder:
        self._resources["memory_bytes"] = size
        return self

    def gpus(self, count: int) -> TaskBuilder:
        self._resources["gpus"] = count
        return self

    def labels(self, **labels: str) -> TaskBuilder:
        self._resources["labels"] = labels
        return self

    def prefer(self, **labels: str) -> TaskBuilder:
        self._resources["preferred_labels"] = labels
        return self

    # submission
    def key(self, key: str) -> TaskBuilder:
        self._submission["key"] = key
        return self

    def pool(self, pool: str) -> TaskBuilder:
        self._submission["pool"] = pool
        return self

    def namespace(self, namespace: str) -> TaskBuilder:
        self._submission["namespace"] = namespace
        return self

    def retries(
        self,
        *,
        task: int | None = None,
        infra: int | None = None,
        backoff: float | None = None,
        max_backoff: float | None = None,
    ) -> TaskBuilder:
        for field, value in (
            ("max_task_retries", task),
            ("max_infra_retries", infra),
            ("backoff_seconds", backoff),
            ("max_backoff_seconds", max_backoff),
        ):
            if value is not None:
                self._retry[field] = value
        return self

    # results
    def spec(self) -> models.TaskSpec:
        return models.TaskSpec(
            name=self._name, resources=models.Resources(**self._resources), **self._spec
        )

    def submission(self) -> models.Submission:
        return models.Submission(
            spec=self.spec(), retry=models.RetryPolicy(**self._retry), **self._submission
        )

    def record(
        self, *, seq: int = 1, task_id: str | None = None, **fields: Any
    ) -> models.TaskRecord:
        """A TaskRecord as the scheduler would hold it; `fields` override any record field."""
        submission = self.submission()
        record = models.TaskRecord(
            id=task_id or self._name,
            spec=submission.spec,
            created_at=0.0,
            seq=seq,
            key=submission.key,
            retry=submission.retry,
            pool=submission.pool,
            namespace=submission.namespace,
        )
        return dataclasses.replace(record, **fields)


class RegistrationBuilder:
    def __init__(self, worker_id: str) -> None:
        self._id = worker_id
        self._resources: dict[str, Any] = {}
        self._fields: dict[str, Any] = {"max_tasks": 1}

    def cpu(self, cores: float) -> RegistrationBuilder:
        self._resources["cpu_cores"] = cores
        return self

    def memory(self, size: int) -> RegistrationBuilder:
        self._resources["memory_bytes"] = size
        return self

    def gpus(self, count: int) -> RegistrationBuilder:
        self._resources["gpus"] = count
        return self

    def labels(self, **labels: str) -> RegistrationBuilder:
        self._resources["labels"] = labels
        return self

    def slots(self, count: int) -> RegistrationBuilder:
        self._fields["max_tasks"] = count
        return self

    def pool(self, pool: str) -> RegistrationBuilder:
        self._fields["pool"] = pool
        return self

    def prefetch(self, count: int) -> RegistrationBuilder:
        self._fields["prefetch"] = count
        return self

    def allocation_ends_at(self, when: float | None) -> RegistrationBuilder:
        self._fields["allocation_ends_at"] = when
        return self

    def running(self, *leases: tuple[str, int]) -> RegistrationBuilder:
        self._fields["running"] = tuple(leases)
        return self

    def registration(self) -> records.Registration:
        return records.Registration(
            worker_id=self._id, capacity=models.Resources(**self._resources), **self._fields
        )

    def worker(self, *, now: float = 0.0, **fields: Any) -> models.WorkerRecord:
        """A WorkerRecord as the scheduler would hold it right after registration."""
        reg = self.registration()
        record = models.WorkerRecord(
            id=reg.worker_id,
            capacity=reg.capacity,
            max_tasks=reg.max_tasks,
            registered_at=now,
            last_seen=now,
            pool=reg.pool,
            allocation_ends_at=reg.allocation_ends_at,
        )
        return dataclasses.replace(record, **fields)


def make_task(name: str) -> TaskBuilder:
    return TaskBuilder(name)


def make_registration(worker_id: str) -> RegistrationBuilder:
    return RegistrationBuilder(worker_id)


def make_worker(worker_id: str) -> RegistrationBuilder:
    """Same builder; finish with `.worker()` for a WorkerRecord."""
    return RegistrationBuilder(worker_id)
