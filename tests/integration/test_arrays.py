"""Task arrays through the command line, real scheduler and real workers: `vahana run` of an
array of 10,000 reports it in one row; through a server, `vahana get task NAME` shows the
array's progress and failed indices, `vahana logs NAME --index I` one instance's output, and
`vahana cancel NAME` stops every instance."""

from __future__ import annotations

from pathlib import Path

import pytest
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.integration.test_cli import vahana
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TASK = "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def test_run_completes_an_array_of_10000_and_shows_it_in_one_row(tmp_path: Path) -> None:
    # 10,000, the count the requirement names for `vahana run` as for `kubectl apply`
    # (tests/k8s/test_arrays_and_queues.py): one object in the file, expanded at submission,
    # run to the end by two local workers, and shown as one row.
    tasks = tmp_path / "array.yaml"
    tasks.write_text(TASK.format(name="sweep", spec="{command: 'true', array: {count: 10000}}"))
    result = vahana("run", "-f", str(tasks), "--workers=2", "--tasks-per-worker=4", timeout=280)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = result.stdout[result.stdout.index("Results") :]
    row = next(line for line in table.splitlines() if "sweep[0-9999]" in line)
    assert "COMPLETED 10,000/10,000" in row
    assert result.stdout.count("sweep[") == 1  # no line per instance


def test_an_array_on_a_server_get_logs_by_index_and_cancel(
    client: harness.Client,
    scheduler: harness.SchedulerProcess,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    start_worker("w", max_tasks=4)
    server = f"--server={scheduler.address}"
    tasks = tmp_path / "tasks.yaml"
    sweep = (
        "{command: 'echo i=$VAHANA_ARRAY_INDEX alpha=$ALPHA; [ $VAHANA_ARRAY_INDEX != 3 ]', "
        "array: {parameters: [{ALPHA: a}, {ALPHA: b}, {ALPHA: c}, {ALPHA: d}, {ALPHA: e}]}}"
    )
    long = "{command: 'sleep 1000', array: {count: 3}}"
    tasks.write_text(
        TASK.format(name="sweep", spec=sweep) + "---\n" + TASK.format(name="long", spec=long)
    )
    submitted = vahana("submit", "-f", str(tasks), server)
    assert submitted.returncode == 0, submitted.stderr
    assert "task/sweep submitted as an array of 5 instances" in submitted.stdout

    wait_until(
        lambda: client.get("sweep").array_status.progress == "5/5",
        timeout=30,
        message="the sweep to finish",
    )
    shown = vahana("get", "task", "sweep", server)
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.strip().startswith("sweep"))
    assert row.split()[1:5] == ["FAILED", "5/5", "0", "0"] and row.split()[-1] == "3", row
    logs = vahana("logs", "sweep", "--index", "2", server)
    assert logs.returncode == 0 and "i=2 alpha=c" in logs.stdout, logs.stdout + logs.stderr
    whole = vahana("logs", "sweep", server)
    assert whole.returncode == 2 and "give --index I" in whole.stderr, whole.stderr

    wait_until(
        lambda: client.get("long").array_status.running == 3,
        timeout=30,
        message="the long array to run",
    )
    cancelled = vahana("cancel", "long", server)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    wait_until(
        lambda: client.get("long").status == pb.CANCELLED,
        timeout=30,
        message="every instance cancelled",
    )
    assert client.get("long").array_status.cancelled == 3


def test_cancelling_a_waiting_array_answers_its_phase_after_the_cancel(
    client: harness.Client, scheduler: harness.SchedulerProcess, tmp_path: Path
) -> None:
    tasks = tmp_path / "array.yaml"
    unmatched = "workerSelector: {zone: nowhere}"  # no worker: every instance waits
    tasks.write_text(
        TASK.format(name="idle", spec=f"{{command: 'true', array: {{count: 4}}, {unmatched}}}")
    )
    assert vahana("submit", "-f", str(tasks), f"--server={scheduler.address}").returncode == 0
    answer = client.tasks.CancelTask(tasks_pb.CancelTaskRequest(id="idle"), timeout=10)
    assert answer.cancelled and answer.status == pb.CANCELLED
    assert client.get("idle").array_status.cancelled == 4
