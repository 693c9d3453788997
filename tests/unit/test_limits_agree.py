"""A task's limits are one record on each side of the protocol: the scheduler's
`core.models.Limits`, the wire's `worker.ResourceLimits` and the worker's `limits.Limits` (the
worker never imports the scheduler, so it cannot share the class) have the same fields."""

from __future__ import annotations

import dataclasses

from vahana.core import models
from vahana.proto import worker_pb2
from vahana_worker import limits


def test_the_scheduler_the_wire_and_the_worker_have_the_same_limits() -> None:
    scheduler = [field.name for field in dataclasses.fields(models.Limits)]
    worker = [field.name for field in dataclasses.fields(limits.Limits)]
    wire = [field.name for field in worker_pb2.ResourceLimits.DESCRIPTOR.fields]
    assert scheduler == worker == wire
