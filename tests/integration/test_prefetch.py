"""Prefetch end to end, a real scheduler and real workers over gRPC: a worker working through
short tasks queues a few behind its slot, so one call carries several results (the control
run without prefetch makes a call per task); a task queued behind one that turns out long is
handed back and runs on another worker, no failure counted; a draining worker hands back its
queued tasks at once."""

from __future__ import annotations

import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TASKS = 150
WORKER_CALLS = ("BatchUpdateTaskStatus", "UpdateTaskStatus", "PollForTask")


@pytest.fixture
def scheduler(state_dir: Path) -> Iterator[harness.SchedulerProcess]:
    """The scheduler with its /metrics endpoint, to count the workers' calls."""
    process = harness.SchedulerProcess(state_dir=state_dir, metrics_port=harness.free_port())
    process.start()
    yield process
    process.stop()


def calls_handled(scheduler: harness.SchedulerProcess) -> int:
    """Task calls the scheduler has answered (polls, reports, and reports on the worker's
    status stream, each as a call), from its own counters."""
    url = f"http://127.0.0.1:{scheduler.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    counted = {
        "vahana_grpc_server_handled": WORKER_CALLS,
        "vahana_grpc_server_msg_received": ("StreamTaskStatus",),
    }
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name in counted
            for sample in family.samples
            if sample.name.endswith("_total")
            and sample.labels["grpc_method"] in counted[family.name]
        )
    )


def attempts(scheduler: harness.SchedulerProcess, task_id: str) -> list[tuple[str, str]]:
    """(phase, worker) of each attempt of a task, in order, read from the store."""
    with sqlite3.connect(f"file:{scheduler.db_path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT phase, worker_id FROM attempts WHERE task_id = ? ORDER BY attempt", (task_id,)
        ).fetchall()
    return [(phase, worker) for phase, worker in rows]


def all_completed(client: harness.Client, ids: list[str]) -> bool:
    return all(client.status(task_id) == pb.COMPLETED for task_id in ids)


def started(worker: harness.WorkerProcess, task_id: str) -> bool:
    """Whether the worker has started the task (its log says so)."""
    return any(
        '"task started"' in line and f"task_id={task_id} " in line
        for line in worker.log_text().splitlines()
    )


def wait_registered(client: harness.Client, *worker_ids: str) -> None:
    wait_until(
        lambda: {w.worker_id for w in client.list_workers()} >= set(worker_ids),
        timeout=20,
        message=f"workers {worker_ids} registered",
    )


@pytest.mark.parametrize("prefetch", [4, 0])
def test_short_tasks_are_queued_so_one_call_carries_several_of_them(
    prefetch: int,
    scheduler: harness.SchedulerProcess,
    client: harness.Client,
    start_worker: WorkerFactory,
) -> None:
    start_worker("w1", extra=(f"--prefetch={prefetch}",))
    wait_registered(client, "w1")
    before = calls_handled(scheduler)
    ids = client.submit(*[harness.submission("true", name=f"t{i}") for i in range(TASKS)])
    wait_until(lambda: all_completed(client, ids), timeout=120, interval=0.25, message="all done")
    calls = calls_handled(scheduler) - before
    print(f"prefetch {prefetch}: {calls} calls for {TASKS} tasks")
    if prefetch:
        # Quiet, a call carries 3-4 results; on a loaded machine the worker finds its queue empty
        # more often and polls. Either way far fewer calls than the control's one per task.
        assert calls < TASKS * 2 / 3
    else:
        assert calls >= TASKS  # the control: a call per task without it
    for task_id in ids:
        assert [phase for phase, _ in attempts(scheduler, task_id)] == ["COMPLETED"]


def test_a_task_queued_behind_a_long_one_is_handed_back_and_runs_elsewhere(
    scheduler: harness.SchedulerProcess, client: harness.Client, start_worker: WorkerFactory
) -> None:
    w1 = start_worker("w1", extra=("--prefetch=2", "--prefetch-wait=0.5s"))
    wait_registered(client, "w1")
    warm = client.submit(harness.submission("true", name="warm"))
    wait_until(lambda: all_completed(client, warm), timeout=20, message="a first short task")
    long, q1, q2 = client.submit(
        harness.submission("sleep 60", name="long"),
        harness.submission("true", name="q1"),
        harness.submission("true", name="q2"),
    )
    # w1's last task was short: it takes the three, the two short ones queued behind `long`.
    wait_until(
        lambda: [client.get(t).worker_id for t in (long, q1, q2)] == ["w1"] * 3,
        timeout=20,
        message="all three on w1",
    )
    start_worker("w2")
    wait_until(lambda: all_completed(client, [q1, q2]), timeout=30, message="q1, q2 done")
    for task_id in (q1, q2):
        assert attempts(scheduler, task_id) == [("PENDING", "w1"), ("COMPLETED", "w2")]
        info = client.get(task_id)
        assert (info.task_failures, info.infra_failures) == (0, 0)
    assert client.get(long).status == pb.RUNNING and client.get(long).worker_id == "w1"
    assert "handing back a task not started" in w1.log_text()


def test_a_draining_worker_hands_back_its_queued_tasks_at_once(
    scheduler: harness.SchedulerProcess, client: harness.Client, start_worker: WorkerFactory
) -> None:
    w1 = start_worker("w1", extra=("--prefetch=2", "--prefetch-wait=60s", "--drain-timeout=1s"))
    wait_registered(client, "w1")
    warm = client.submit(harness.submission("true", name="warm"))
    wait_until(lambda: all_completed(client, warm), timeout=20, message="a first short task")
    long, q1 = client.submit(
        harness.submission("sleep 60", name="long"), harness.submission("true", name="q1")
    )
    wait_until(lambda: client.get(q1).worker_id == "w1", timeout=20, message="q1 queued on w1")
    # The scheduler's answer is on its way to w1 once it says so: wait until w1 has it (`long`
    # came in the same answer as q1).
    wait_until(lambda: started(w1, long), timeout=20, message="long started on w1")
    assert w1.terminate() == 0
    assert attempts(scheduler, q1) == [("PENDING", "w1")]
    info = client.get(q1)
    assert info.status == pb.PENDING and (info.task_failures, info.infra_failures) == (0, 0)
    assert "draining" in info.message


@pytest.mark.parametrize("draining_first", [False, True])
def test_a_task_handed_back_goes_to_a_polling_worker_unless_it_said_draining_first(
    client: harness.Client, draining_first: bool
) -> None:
    """The cause of a draining worker's task handed back twice: its long poll was still open at
    the scheduler when the hand-back came, and got the task right back. A worker that says
    DRAINING before it hands back gets nothing (agent.py's drain does so)."""
    workers = client.workers
    caps = pb.WorkerCapabilities(max_concurrent_tasks=1, prefetch=1)
    workers.RegisterWorker(pb.RegisterWorkerRequest(worker_id="w-d", capabilities=caps), timeout=10)
    [q1] = client.submit(harness.submission("true", name="q1"))
    first = workers.PollForTask(pb.PollForTaskRequest(worker_id="w-d", max_tasks=1), timeout=10)
    assert (first.task.id, first.task.attempt) == (q1, 1)
    poll = pb.PollForTaskRequest(worker_id="w-d", max_tasks=1)
    poll.wait.FromSeconds(2)
    open_poll = workers.PollForTask.future(poll, timeout=10)  # held open: the queue is empty
    if draining_first:
        workers.UpdateWorkerStatus(
            pb.UpdateWorkerStatusRequest(worker_id="w-d", status=pb.DRAINING), timeout=10
        )
    workers.UpdateTaskStatus(
        pb.UpdateTaskStatusRequest(
            task_id=q1, worker_id="w-d", attempt=1, status=pb.PENDING, message="draining"
        ),
        timeout=10,
    )
    answer = open_poll.result()
    if draining_first:
        assert not answer.HasField("task") and client.get(q1).status == pb.PENDING
    else:
        assert (answer.task.id, answer.task.attempt) == (q1, 2)  # back to the draining worker
