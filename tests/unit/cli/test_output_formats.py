"""-o json / -o yaml: a list for `get tasks` and `get workers` whatever the count, an object for
`get task`; plain text that scripts parse, with nothing read as markup."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from rich.console import Console
from vahana.cli import client
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb


def printed(write: object, *args: object, terminal: bool = False) -> str:
    out = io.StringIO()
    write(Console(file=out, force_terminal=terminal), *args)  # type: ignore[operator]
    return out.getvalue()


def task(name: str) -> tasks_pb.TaskInfo:
    return tasks_pb.TaskInfo(id=f"t-{name}", name=name, status=pb.COMPLETED)


@pytest.mark.parametrize("count", [0, 1, 3])
@pytest.mark.parametrize("terminal", [False, True])
def test_get_tasks_prints_a_list_whatever_the_count(count: int, terminal: bool) -> None:
    tasks = [task(f"[bold]{i}") for i in range(count)]
    as_json = json.loads(printed(client.print_records, tasks, "json", terminal=terminal))
    assert isinstance(as_json, list) and [t["name"] for t in as_json] == [t.name for t in tasks]
    as_yaml = yaml.safe_load(printed(client.print_records, tasks, "yaml", terminal=terminal))
    assert (as_yaml or []) == as_json


def test_get_task_prints_one_object() -> None:
    one = task("a")
    as_json = json.loads(printed(client.print_record, one, "json"))
    assert as_json == {"id": "t-a", "name": "a", "status": "COMPLETED"}
    assert yaml.safe_load(printed(client.print_record, one, "yaml")) == as_json


def test_workers_are_a_list_too() -> None:
    workers = [pb.WorkerInfo(worker_id="w1")]
    assert json.loads(printed(client.print_records, workers, "json")) == [{"worker_id": "w1"}]
