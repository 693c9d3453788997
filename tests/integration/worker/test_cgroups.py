"""Task cgroups on this host's real cgroup hierarchy: memory and process limits bind a task's
processes together, the status names the limit from the kernel's own counters, whatever the
task leaves behind (even outside its process group) is killed, and the cgroup is removed. The
control runs the same task with setrlimit only, to show what the cgroup changes.

Needs a hierarchy the worker may create cgroups in (root, cgroup v1 memory and pids or a
delegated cgroup v2); without one the tests skip (fail under CI=true) and say why."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb
from vahana_worker import cgroups, executor, limits

from tests.conftest import require
from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TWO_PROCESSES_OF_60MI = (
    "python3 -c 'import time; x = bytearray(60 * 2**20); time.sleep(3)' & a=$!; "
    "python3 -c 'import time; x = bytearray(60 * 2**20); time.sleep(3)' & b=$!; "
    "wait $a; ra=$?; wait $b; rb=$?; [ $ra = 0 ] && [ $rb = 0 ] && echo survived"
)
"""Fails unless both processes, 60Mi each, live to the end."""


@pytest.fixture(scope="module")
def manager() -> Iterator[cgroups.Manager]:
    plan, why = cgroups.discover()
    require(
        plan is not None and plan.parents.keys() >= {cgroups.MEMORY, cgroups.PIDS},
        f"no memory and pids cgroups this process may create: {why or plan}",
    )
    assert plan is not None
    yield cgroups.Manager(plan, prefix=f"vahana-test-{os.getpid()}")


def run_task(
    work: Path, command: str, task_limits: limits.Limits, manager: cgroups.Manager | None
) -> executor.Result:
    spec = executor.TaskSpec(
        task_id="cg", attempt=1, command=command, timeout=60, limits=task_limits
    )
    return executor.TaskRun(
        spec, working_dir=work, output_limit=8192, kill_grace=0.5, cgroup_manager=manager
    ).run()


def leftover_cgroups(manager: cgroups.Manager) -> list[Path]:
    return [
        path
        for parent, _ in manager.plan.parents.values()
        for path in parent.glob(f"vahana-test-{os.getpid()}@*")
    ]


def test_the_memory_limit_binds_the_task_s_processes_together(
    tmp_path: Path, manager: cgroups.Manager
) -> None:
    memory = limits.Limits(memory_bytes=96 * 2**20)
    result = run_task(tmp_path, TWO_PROCESSES_OF_60MI, memory, manager)
    assert result.outcome is executor.Outcome.FAILED
    assert result.failure_kind is executor.FailureKind.TASK_ERROR
    assert result.message.startswith(
        "hit its memory limit (96Mi for all its processes; the kernel killed one)"
    ), result.message
    assert leftover_cgroups(manager) == []
    # The control: setrlimit limits each process's address space, and each fits in it.
    control = run_task(tmp_path, TWO_PROCESSES_OF_60MI, memory, None)
    assert control.outcome is executor.Outcome.COMPLETED, control.message + control.output_tail


def test_the_process_limit_counts_the_task_s_processes_even_for_root(
    tmp_path: Path, manager: cgroups.Manager
) -> None:
    forks = (  # 20 sleeping children at once; the task's process group goes when it ends
        "python3 -c 'import os, time\n"
        "for _ in range(20):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n'"
    )
    result = run_task(tmp_path, forks, limits.Limits(processes=5), manager)
    assert result.outcome is executor.Outcome.FAILED
    assert result.message.startswith("hit its process limit (5 processes at once)"), result.message
    assert "Resource temporarily unavailable" in result.output_tail
    assert leftover_cgroups(manager) == []
    if os.geteuid() == 0:  # the control: RLIMIT_NPROC does not bind root
        control = run_task(tmp_path, forks, limits.Limits(processes=5), None)
        assert control.outcome is executor.Outcome.COMPLETED, control.message


def test_a_process_that_left_the_task_s_process_group_is_killed_with_its_cgroup(
    tmp_path: Path, manager: cgroups.Manager
) -> None:
    result = run_task(tmp_path, "setsid sleep 300 & echo $!", limits.Limits(processes=50), manager)
    assert result.outcome is executor.Outcome.COMPLETED, result.message
    escaped = int(result.output_tail.split()[0])
    wait_until(lambda: not _alive(escaped), timeout=10, message="the escaped sleep killed")
    assert leftover_cgroups(manager) == []


def test_a_task_within_its_limits_completes_and_the_next_one_runs(
    tmp_path: Path, manager: cgroups.Manager
) -> None:
    both = limits.Limits(memory_bytes=256 * 2**20, processes=64)
    first = run_task(tmp_path, "python3 -c 'x = bytearray(32 * 2**20)'; echo ok", both, manager)
    assert first.outcome is executor.Outcome.COMPLETED and first.output_tail == "ok\n"
    second = run_task(tmp_path, "echo again", both, manager)
    assert second.outcome is executor.Outcome.COMPLETED and second.output_tail == "again\n"


def test_tasks_without_limits_take_turns_in_one_cgroup_which_goes_with_the_manager(
    tmp_path: Path, manager: cgroups.Manager, request: pytest.FixtureRequest
) -> None:
    spares = cgroups.Manager(manager.plan, prefix=f"vahana-test-{os.getpid()}-spares")
    request.addfinalizer(spares.close)
    where = "grep -m1 -E ':pids:|^0::' /proc/self/cgroup"  # the pids one first, if v1
    first = run_task(tmp_path, where, limits.Limits(), spares)
    second = run_task(tmp_path, f"{where}; setsid sleep 300 & echo $!", limits.Limits(), spares)
    assert first.outcome is second.outcome is executor.Outcome.COMPLETED, second.message
    assert "spares@" in first.output_tail
    cgroup_of_first = first.output_tail.splitlines()[0]
    assert second.output_tail.splitlines()[0] == cgroup_of_first  # the same directory
    escaped = int(second.output_tail.splitlines()[1])
    wait_until(lambda: not _alive(escaped), timeout=10, message="the escaped sleep killed")
    third = run_task(tmp_path, where, limits.Limits(), spares)
    assert third.output_tail.splitlines()[0] == cgroup_of_first  # emptied: kept again
    kept = [
        path
        for parent, _ in manager.plan.parents.values()
        for path in parent.glob(f"vahana-test-{os.getpid()}-spares@*")
    ]
    assert len(kept) == 1
    spares.close()
    assert not kept[0].exists()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_discovery_reads_this_host_s_hierarchies() -> None:
    mounts = cgroups.parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    own = cgroups.parse_self_cgroup(Path("/proc/self/cgroup").read_text())
    assert mounts, "no cgroup mount in /proc/self/mountinfo"
    for mount in mounts:
        assert mount.path.is_dir()
        if mount.version == 1:
            for name in mount.controllers:
                assert name in own


def test_a_worker_gives_each_limited_task_a_cgroup(
    manager: cgroups.Manager, client: harness.Client, start_worker: WorkerFactory
) -> None:
    worker = start_worker("cg-worker")
    spec = pb.Task(name="two-of-60Mi", command=TWO_PROCESSES_OF_60MI)
    spec.limits.memory_bytes = 96 * 2**20
    [task_id] = client.submit(tasks_pb.TaskSubmission(spec=spec))
    done = wait_until(
        lambda: (lambda t: t if t.status in (pb.COMPLETED, pb.FAILED) else None)(
            client.get(task_id)
        ),
        timeout=60,
        message="the task final",
    )
    assert done.status == pb.FAILED
    assert done.message.startswith("hit its memory limit (96Mi for all its processes"), done.message
    assert 'msg="task cgroups"' in worker.log_text()


def test_a_cgroup_v2_root_is_used_if_it_offers_the_controllers_else_refused_with_why() -> None:
    """On this host's own cgroup v2 hierarchy, whichever way it is: task cgroups made and
    limited there, or a refusal that names what is missing."""
    mounts = cgroups.parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    unified = next((m for m in mounts if m.version == 2), None)
    require(unified is not None, "no cgroup v2 hierarchy mounted")
    assert unified is not None
    root = unified.path / f"vahana-test-{os.getpid()}"
    try:
        plan, why = cgroups.discover(root=str(root))
        offered = set((unified.path / "cgroup.controllers").read_text().split())
        if not offered & {cgroups.MEMORY, cgroups.PIDS}:
            assert plan is None
            assert why.startswith(f"{root} offers neither memory nor pids"), why
            return
        assert plan is not None and all(v == 2 for _, v in plan.parents.values()), why
        manager = cgroups.Manager(plan, prefix="t")
        cgroup = manager.create("task", memory_bytes=2**30, processes=10)
        for controller, (path, _) in cgroup.dirs.items():
            limit = "memory.max" if controller == cgroups.MEMORY else "pids.max"
            assert (path / limit).read_text().strip() in ("1073741824", "10")
        cgroup.remove()
        assert not any(path.exists() for path, _ in cgroup.dirs.values())
    finally:
        if root.exists():
            root.rmdir()


def test_a_worker_refuses_to_start_with_a_cgroup_root_it_cannot_use(
    start_worker: WorkerFactory, state_dir: Path
) -> None:
    not_a_cgroup = state_dir / "plain-directory"
    worker = start_worker("cg-refused", extra=(f"--cgroup-root={not_a_cgroup}",))
    assert worker.process is not None
    assert worker.process.wait(timeout=30) == 1
    assert "cannot use --cgroup-root" in worker.log_text()


def test_task_cgroups_left_by_an_earlier_run_are_swept_with_their_processes(
    manager: cgroups.Manager,
) -> None:
    plan = manager.plan
    again = cgroups.Manager(plan, prefix=f"vahana-test-{os.getpid()}-sweep")
    left = again.create("t1-a1", memory_bytes=2**30, processes=10)
    # A worker whose id starts with this one's keeps its cgroups.
    other = cgroups.Manager(plan, prefix=f"vahana-test-{os.getpid()}-sweep-2")
    kept = other.create("t1-a1", memory_bytes=2**30, processes=10)
    joins = "; ".join(f"echo 0 > {path}" for path in left.join_files)
    orphan = subprocess.Popen(["sh", "-c", f"{joins}; exec sleep 300"], start_new_session=True)
    wait_until(
        lambda: all(
            str(orphan.pid) in (path / "cgroup.procs").read_text().split()
            for path, _ in left.dirs.values()
        ),
        timeout=10,
        message="the orphan in its cgroups",
    )
    try:
        # Another incarnation of the same worker id finds and removes them.
        assert cgroups.Manager(plan, prefix=f"vahana-test-{os.getpid()}-sweep").sweep() == 1
        assert orphan.wait(timeout=10) == -9
        assert not any(path.exists() for path, _ in left.dirs.values())
        assert all(path.exists() for path, _ in kept.dirs.values())
    finally:
        orphan.kill()
        kept.remove()
