"""Big answers are paged and every field is bounded: `get tasks` over 100,000 tasks, `logs` of a
64 MiB output, a worker's 60 MB status message, a 3 MB command."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from vahana.core import bounds, models
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb
from vahana.store import sqlite

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.integration.test_cli import vahana
from tests.waiting import wait_until


def _fill(db: Path, count: int, *, tail: str = "") -> None:
    """`count` finished tasks in a scheduler's SQLite store: the first written by the store, the
    rest copied from it in SQL (100,000 in about a second)."""
    store = sqlite.SqliteStore(db)
    now = time.time()
    try:
        with store.transaction():
            store.insert_tasks(
                [
                    models.TaskRecord(
                        id="t-000001",
                        spec=models.TaskSpec(name="task-1", command="true"),
                        created_at=now,
                        seq=1,
                        phase=models.TaskPhase.COMPLETED,
                        exit_code=0,
                        output_tail=tail,
                        finished_at=now,
                    )
                ]
            )
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(tasks)")]
        copied = {"id": "printf('t-%06d', n)", "seq": "n", "name": "'task-' || n"}
        picked = ", ".join(copied.get(column, column) for column in columns)
        connection.execute(
            f"WITH RECURSIVE c(n) AS (SELECT 2 UNION ALL SELECT n + 1 FROM c WHERE n < ?) "
            f"INSERT INTO tasks ({', '.join(columns)}) "
            f"SELECT {picked} FROM c, tasks WHERE tasks.seq = 1",
            (count,),
        )


@pytest.fixture
def filled(state_dir: Path, request: pytest.FixtureRequest) -> harness.SchedulerProcess:
    count, tail = request.param
    _fill(state_dir / "vahana.db", count, tail=tail)
    return harness.SchedulerProcess(state_dir=state_dir)


@pytest.mark.parametrize("filled", [(100_000, "")], indirect=True)
def test_get_tasks_lists_100000_tasks_page_by_page(filled: harness.SchedulerProcess) -> None:
    filled.start()
    try:
        server = f"--server={filled.address}"
        every = vahana("get", "tasks", "--all", "-o", "json", server, timeout=300)
        assert every.returncode == 0, every.stderr[-2000:]
        listed = json.loads(every.stdout)
        assert len(listed) == 100_000
        assert [t["id"] for t in listed[:2]] == ["t-000001", "t-000002"]
        assert listed[-1]["id"] == "t-100000"

        first = vahana("get", "tasks", server)
        assert first.returncode == 0, first.stderr
        assert "showing the oldest 500 task(s)" in first.stderr and "--all" in first.stderr
        some = vahana("get", "tasks", "--limit", "1500", "-o", "json", server)
        assert [t["id"] for t in json.loads(some.stdout)][-1] == "t-001500"
    finally:
        filled.stop()


@pytest.mark.parametrize("filled", [(80, "x" * 65_536)], indirect=True)
def test_tasks_printing_64_kb_each_are_listed_in_pages_under_4_mb(
    filled: harness.SchedulerProcess,
) -> None:
    filled.start()
    try:
        client = harness.Client(filled.address)
        first = client.tasks.ListTasks(tasks_pb.ListTasksRequest(), timeout=10)
        client.close()
        assert first.ByteSize() <= bounds.LIST_PAGE_BYTES and first.next_page_token
        every = vahana("get", "tasks", "-o", "json", f"--server={filled.address}")
        assert every.returncode == 0, every.stderr
        assert len(json.loads(every.stdout)) == 80
    finally:
        filled.stop()


def test_logs_of_a_64_mib_output_print_what_the_cap_kept_then_its_last_mib(
    client: harness.Client, scheduler: harness.SchedulerProcess, start_worker: WorkerFactory
) -> None:
    # 64 MiB of two-byte characters, then a last line: the scheduler keeps the first 64 MiB
    # (its cap), the status the last MiB; `logs` prints the kept part, a note, then that tail.
    start_worker("loud", extra=("--output-limit=8388608",))
    command = "yes é | head -c 67108864; echo; echo the-end"
    [task_id] = client.submit(harness.submission(command, name="loud"))
    wait_until(lambda: client.status(task_id) == pb.COMPLETED, timeout=60, message="loud done")
    logs = subprocess.run(
        [sys.executable, "-m", "vahana.cli.main", "logs", "loud", f"--server={scheduler.address}"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert logs.returncode == 0, logs.stderr
    kept, note, tail = logs.stdout.partition(b"\n[vahana: output cut at 67108864 bytes;")
    assert note, "the cap's note is missing"
    assert len(kept) == 64 << 20 and kept.startswith("é\n".encode())
    assert tail.endswith(b"the-end\n")
    assert len(tail) <= bounds.OUTPUT_TAIL_BYTES + 100


def test_a_60_mb_status_message_is_cut_to_its_bound(
    client: harness.Client, scheduler: harness.SchedulerProcess
) -> None:
    [task_id] = client.submit(harness.submission("true", name="chatty"))
    workers = client.workers
    workers.RegisterWorker(
        pb.RegisterWorkerRequest(
            worker_id="w-chatty", capabilities=pb.WorkerCapabilities(max_concurrent_tasks=1)
        ),
        timeout=10,
    )
    polled = workers.PollForTask(
        pb.PollForTaskRequest(worker_id="w-chatty", max_tasks=1), timeout=30
    )
    assert polled.task.id == task_id
    workers.UpdateTaskStatus(
        pb.UpdateTaskStatusRequest(
            task_id=task_id,
            worker_id="w-chatty",
            attempt=polled.task.attempt,
            status=pb.FAILED,
            exit_code=1,
            message="m" * 60_000_000,
        ),
        timeout=60,
    )
    info = wait_until(
        lambda: (i := client.get(task_id)).status == pb.FAILED and i, timeout=10, message="failed"
    )
    # The scheduler may add its own few words (retries exhausted) to the worker's cut message.
    assert len(info.message.encode()) <= bounds.MESSAGE_BYTES + 200
    assert info.message.startswith("mmm") and "bytes cut" in info.message
    shown = vahana("get", "task", task_id, "-o", "json", f"--server={scheduler.address}")
    assert shown.returncode == 0, shown.stderr
    assert scheduler.db_path.stat().st_size < 10_000_000


def test_a_3_mb_command_is_refused_at_submission_naming_the_limit(
    client: harness.Client, scheduler: harness.SchedulerProcess, tmp_path: Path
) -> None:
    command = "echo " + "x" * 3_000_000
    task_file = tmp_path / "big.yaml"
    task_file.write_text(
        "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: big}\n"
        f"spec: {{command: '{command}'}}\n"
    )
    result = vahana("submit", "-f", str(task_file), f"--server={scheduler.address}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "spec.command" in result.stderr and "65536" in result.stderr
    assert "nothing was submitted" in result.stderr
    # A client that skips the CLI's check is refused by the scheduler, naming the same limit.
    with pytest.raises(grpc.RpcError) as refused:
        client.submit(harness.submission(command, name="big"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "command: at most 65536 bytes" in (refused.value.details() or "")
    listed = client.tasks.ListTasks(tasks_pb.ListTasksRequest(), timeout=10)
    assert list(listed.tasks) == []
