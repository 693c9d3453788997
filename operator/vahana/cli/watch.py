"""`vahana get tasks --watch`: the task list, then one line per change as it happens.

Like `kubectl get -w`: the current tasks first (the table's columns, without its borders), then
a line each time a task changes (submitted, assigned, running, finished, retried), until
Ctrl-C or the scheduler ends the stream. With `-o json` every line is one TaskInfo object.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TextIO

from google.protobuf import json_format

from vahana.cli import render
from vahana.proto import task_service_pb2 as tasks_pb

COLUMNS = ("ID", "NAME", "STATUS", "ATTEMPT", "WORKER", "EXIT", "REASON")
WIDTHS = (14, 24, 10, 7, 22, 4)
"""Widths of all but the last column; wider values push the line, never cut it."""


def line(task: tasks_pb.TaskInfo) -> str:
    cells = (
        task.id,
        task.name,
        render.status_name(task),
        str(task.attempt),
        task.worker_id or "-",
        render.exit_code(task),
    )
    reason = task.pending_reason or render.last_line(task.message)
    return "".join(f"{cell:<{width}} " for cell, width in zip(cells, WIDTHS, strict=True)) + reason


def header() -> str:
    return "".join(f"{name:<{w}} " for name, w in zip(COLUMNS, WIDTHS + (0,), strict=True)).rstrip()


def follow(
    current: Iterable[tasks_pb.TaskInfo],
    changes: Iterable[tasks_pb.TaskInfo],
    *,
    output: str = "table",
    out: TextIO = sys.stdout,
) -> None:
    """Prints `current`, then every change, flushing each line so a pipe sees it at once."""

    def emit(task: tasks_pb.TaskInfo) -> None:
        if output == "table":
            out.write(line(task).rstrip() + "\n")
        else:
            record = json_format.MessageToDict(task, preserving_proto_field_name=True)
            out.write(json.dumps(record, sort_keys=True) + "\n")
        out.flush()

    if output == "table":
        out.write(header() + "\n")
    for task in current:
        emit(task)
    for task in changes:
        emit(task)
