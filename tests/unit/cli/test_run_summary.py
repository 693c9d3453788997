"""The end of a large `vahana run`: counts per phase, the tasks that failed, the slowest ones."""

from __future__ import annotations

from google.protobuf import duration_pb2
from rich.console import Console
from vahana.cli import render
from vahana.core import models
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb
from vahana.rpc import convert


def task(name: str, status: int, seconds: float) -> tasks_pb.TaskInfo:
    info = tasks_pb.TaskInfo(name=name, status=status, worker_id="w1")
    info.duration.CopyFrom(duration_pb2.Duration(nanos=int(seconds * 1e9)))
    return info


def text_of(renderable: object) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_summary_counts_phases_and_lists_every_failure_then_the_slowest() -> None:
    tasks = [task(f"ok-{i}", pb.COMPLETED, 0.001 * i) for i in range(200)]
    tasks += [task("broken-1", pb.FAILED, 0.01), task("broken-2", pb.FAILED, 0.02)]
    out = text_of(render.run_summary(tasks))
    assert "Results of 202 tasks: COMPLETED 200  FAILED 2" in out
    rows = [line.split()[0] for line in out.splitlines() if line.strip().startswith(("ok", "br"))]
    assert rows == ["broken-1", "broken-2", "ok-199", "ok-198", "ok-197", "ok-196", "ok-195"]
    assert "--all" in out


def test_summary_of_a_run_without_failures_names_no_failure() -> None:
    out = text_of(render.run_summary([task(f"t{i}", pb.COMPLETED, 0.01) for i in range(60)]))
    assert "did not complete" not in out and "the 5 slowest" in out


def test_a_run_s_results_leave_out_what_the_tasks_were_submitted_with() -> None:
    """`vahana run` keeps a record per task to the end: without its spec (command, environment,
    resources), which the table and summary do not show and which is most of its memory."""
    spec = models.TaskSpec(name="big", command="echo " + "x" * 1000, environment={"A": "b"})
    record = models.TaskRecord(
        id="t-1",
        spec=spec,
        created_at=1.0,
        seq=1,
        phase=models.TaskPhase.COMPLETED,
        attempt=1,
        worker_id="w1",
        exit_code=0,
        started_at=2.0,
        finished_at=3.5,
    )
    whole = convert.task_info(record)
    shown = convert.task_info(record, with_spec=False)
    assert whole.spec.command.startswith("echo x") and not shown.HasField("spec")
    assert shown.ByteSize() < whole.ByteSize() - 1000
    assert (shown.name, shown.status, shown.worker_id, shown.exit_code) == (
        "big",
        pb.COMPLETED,
        "w1",
        0,
    )
    assert shown.duration.ToTimedelta().total_seconds() == 1.5
    assert text_of(render.results_table([shown])) == text_of(render.results_table([whole]))
