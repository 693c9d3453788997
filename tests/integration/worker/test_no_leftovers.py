"""No process and no zombie outlives its task, on this host, with real workers over real gRPC.

Each test runs in both of the worker's ways of finding a task's processes: "cgroups" (a cgroup
per task; skipped, or failed under CI=true, where this host lets none be made) and "marker"
(`--cgroups off`: the worker is a child subreaper, and finds what a task left by the
VAHANA_TASK marker in its environment). Escapees are the four kinds in `procs_helpers.ESCAPEES`
(setsid, double fork, one that ignores SIGTERM, a plain background job).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.integration.worker import procs_helpers as ph
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

GRACE = 1.0
"""--kill-grace of the workers here (seconds)."""


def final(client: harness.Client, task_id: str, timeout: float = 30) -> tasks_pb.TaskInfo:
    return wait_until(
        lambda: (lambda t: t if t.status in harness.FINAL else None)(client.get(task_id)),
        timeout=timeout,
        message=f"task {task_id} final",
    )


def all_final(client: harness.Client, ids: list[str]) -> list[tasks_pb.TaskInfo] | None:
    listed = list(client.tasks.ListTasks(tasks_pb.ListTasksRequest(ids=ids), timeout=10).tasks)
    return listed if all(t.status in harness.FINAL for t in listed) else None


@ph.MODES
def test_500_orphaning_tasks_leave_no_zombie_and_every_exit_code_is_the_task_s(
    mode: str, client: harness.Client, start_worker: WorkerFactory
) -> None:
    """`(sleep 0.2 &); true` leaves an orphan each time; one task in five exits 3, which a
    reaper that took the executor's children would turn into 0."""
    worker = start_worker(f"orphans-{mode}", max_tasks=4, extra=ph.mode_flags(mode))
    commands = [
        "(sleep 0.2 &); exit 3" if i % 5 == 0 else "(sleep 0.2 &); true" for i in range(500)
    ]
    started = time.monotonic()
    ids = client.submit(*(harness.submission(c, f"o{i}") for i, c in enumerate(commands)))
    tasks = wait_until(lambda: all_final(client, ids), timeout=180, message="500 tasks final")
    seconds = time.monotonic() - started
    by_id = {t.id: t for t in tasks}
    for task_id, command in zip(ids, commands, strict=True):
        task = by_id[task_id]
        if "exit 3" in command:
            assert task.status == pb.FAILED and task.exit_code == 3, task
        else:
            assert task.status == pb.COMPLETED, task
    wait_until(
        lambda: not ph.zombies_of(worker.pid), timeout=5, message="no zombie child of the worker"
    )
    others = [c for c in ph.children_of(worker.pid) if c.pid != ph.guardian_of(worker.pid)]
    assert others == [], others
    print(f"\n{mode}: 500 orphaning tasks in {seconds:.1f}s; zombies 0, other children 0")


@ph.MODES
@pytest.mark.parametrize("ending", ["completed", "timed_out", "cancelled"])
def test_escapees_are_gone_within_the_grace_however_the_task_ends(
    mode: str,
    ending: str,
    client: harness.Client,
    start_worker: WorkerFactory,
    state_dir: Path,
) -> None:
    pids = state_dir / f"{mode}-{ending}.pids"
    cleared = state_dir / f"{mode}-{ending}.cleared"
    start_worker(f"esc-{mode}-{ending}", extra=(*ph.mode_flags(mode), f"--kill-grace={GRACE}s"))
    tail = {"completed": "sleep 1", "timed_out": "sleep 1000", "cancelled": "sleep 1000"}[ending]
    command = ph.escapee_command(pids, tail, cleared=cleared)
    options = {"timeout_seconds": 3} if ending == "timed_out" else {}
    with ph.killed_afterwards(pids, cleared):
        [task_id] = client.submit(harness.submission(command, "escapes", **options))
        wait_until(
            lambda: len(ph.pids_in(pids)) == 4 and len(ph.pids_in(cleared)) == 2,
            timeout=20,
            message="six escapees",
        )
        # While the task runs, its escapees are its own: nothing ends them early.
        assert all(ph.alive(pid) for pid in ph.pids_in(pids) + ph.pids_in(cleared))
        if ending == "cancelled":
            request = tasks_pb.CancelTaskRequest(id=task_id, reason="test")
            assert client.tasks.CancelTask(request, timeout=5).cancelled
        task = final(client, task_id)
        seen_final = time.monotonic()
        want = {"completed": pb.COMPLETED, "timed_out": pb.TIMED_OUT, "cancelled": pb.CANCELLED}
        assert task.status == want[ending], task
        [holds_pipe, closed_all] = ph.pids_in(cleared)
        # The result is reported once the task's processes are gone (SIGKILL after the grace
        # for the one that ignores SIGTERM): the marked ones, and the one without a marker
        # that holds the task's output pipe.
        assert [pid for pid in [*ph.pids_in(pids), holds_pipe] if ph.alive(pid)] == []
        # One that cleared its environment and closed its output: its cgroup, or the reaper's
        # rule that an unmarked orphan is ended once no task runs (its next scan, the grace).
        wait_until(
            lambda: not ph.alive(closed_all),
            timeout=GRACE + 3,
            message="the escapee without a marker or the output pipe gone",
        )
        lag = time.monotonic() - seen_final
        print(
            f"\n{mode}/{ending}: escapees gone at the report, the untraceable one {lag:.2f}s later"
        )


@ph.MODES
def test_kill_9_of_a_worker_leaves_no_process_of_its_tasks(
    mode: str,
    scheduler: harness.SchedulerProcess,
    client: harness.Client,
    start_worker: WorkerFactory,
    state_dir: Path,
) -> None:
    pids = state_dir / f"kill9-{mode}.pids"
    worker = start_worker(f"doomed-{mode}", extra=(*ph.mode_flags(mode), f"--kill-grace={GRACE}s"))
    with ph.killed_afterwards(pids):
        command = ph.escapee_command(pids, f"echo $$ >> {pids}; exec sleep 1000")
        [task_id] = client.submit(harness.submission(command, "orphaned-by-kill"))
        wait_until(lambda: len(ph.pids_in(pids)) == 5, timeout=20, message="task and escapees")
        worker.kill()
        killed_at = time.monotonic()
        limit = scheduler.missed_heartbeats * scheduler.heartbeat_interval + 2
        wait_until(
            lambda: not any(ph.alive(pid) for pid in ph.pids_in(pids)),
            timeout=limit,
            message="every process of the killed worker's task gone",
        )
        print(f"\n{mode}: all 5 gone {time.monotonic() - killed_at:.2f}s after kill -9")
    assert client.get(task_id).status != pb.COMPLETED


@ph.MODES
def test_a_worker_restarted_under_its_id_ends_what_its_earlier_life_left(
    mode: str,
    client: harness.Client,
    start_worker: WorkerFactory,
    state_dir: Path,
) -> None:
    """The guardian is killed first, so the task's processes outlive the worker; the next
    worker with the same id ends them at start-up. Another worker's task is left alone."""
    pids = state_dir / f"phoenix-{mode}.pids"
    other = state_dir / f"bystander-{mode}.pids"
    flags = (*ph.mode_flags(mode), f"--kill-grace={GRACE}s")
    first = start_worker(f"phoenix-{mode}", extra=(*flags, "--label=who=phoenix"))
    start_worker(f"bystander-{mode}", extra=(*flags, "--label=who=bystander"))
    with ph.killed_afterwards(pids, other):
        client.submit(
            harness.submission(
                ph.escapee_command(pids, f"echo $$ >> {pids}; sleep 1000"),
                "left-behind",
                labels={"who": "phoenix"},
            ),
            harness.submission(
                f"echo $$ >> {other}; setsid sleep 1000 & echo $! >> {other}; sleep 1000",
                "elsewhere",
                labels={"who": "bystander"},
            ),
        )
        wait_until(lambda: len(ph.pids_in(pids)) == 5, timeout=20, message="task and escapees")
        wait_until(lambda: len(ph.pids_in(other)) == 2, timeout=20, message="the other task")
        os.kill(ph.guardian_of(first.pid), signal.SIGKILL)
        first.kill()
        earlier = ph.pids_in(pids)
        assert all(ph.alive(pid) for pid in earlier), "ended without a guardian?"
        again = start_worker(first.worker_id, extra=(*flags, "--label=who=phoenix"))
        restarted = time.monotonic()
        # (The task runs again on the restarted worker and adds its own pids to the file.)
        wait_until(
            lambda: not any(ph.alive(pid) for pid in earlier),
            timeout=GRACE + 15,
            message="the earlier life's processes ended by the restarted worker",
        )
        print(
            f"\n{mode}: earlier life's 5 processes gone {time.monotonic() - restarted:.2f}s "
            "after the restart"
        )
        assert all(ph.alive(pid) for pid in ph.pids_in(other)), "another worker's task touched"
        wait_until(
            lambda: "left_by_an_earlier_run=" in again.log_text(),
            timeout=5,
            message="the restarted worker's log says what it ended",
        )
