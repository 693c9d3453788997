"""The executor with real bash: exit codes, output tail, environment, timeout and cancel kill
the whole process group (checked by pid), sandbox clean-up."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from vahana_worker import executor

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True, params=["pidfd", "waiting-thread"])
def exit_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs twice: with the process's pidfd (Linux 5.3+), and as on a kernel
    without pidfd_open, where a thread waits for the process instead."""
    if request.param == "waiting-thread":

        def no_pidfd(pid: int, flags: int = 0) -> int:
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    return str(request.param)


def alive(pid: int) -> bool:
    """True if `pid` is a live process (a zombie nobody reaped yet counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def make_run(
    tmp_path: Path,
    command: str,
    *,
    timeout: float = 30.0,
    output_limit: int = 65536,
    env: dict[str, str] | None = None,
    keep: bool = False,
    task_id: str = "task-1",
    attempt: int = 1,
) -> executor.TaskRun:
    spec = executor.TaskSpec(
        task_id=task_id, attempt=attempt, command=command, timeout=timeout, environment=env or {}
    )
    return executor.TaskRun(
        spec,
        working_dir=tmp_path / "work",
        output_limit=output_limit,
        keep_sandbox=keep,
        kill_grace=0.5,
    )


def start(run: executor.TaskRun) -> tuple[threading.Thread, list[executor.Result]]:
    results: list[executor.Result] = []
    thread = threading.Thread(target=lambda: results.append(run.run()), daemon=True)
    thread.start()
    return thread, results


def read_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().strip() != "")
    return int(path.read_text())


def test_exit_zero_completes_with_output(tmp_path: Path) -> None:
    result = make_run(tmp_path, "echo hello; echo oops >&2").run()
    assert result.outcome is executor.Outcome.COMPLETED
    assert result.exit_code == 0
    assert result.failure_kind is executor.FailureKind.NONE
    assert "hello\n" in result.output_tail and "oops\n" in result.output_tail


def test_a_timeout_of_a_month_is_waited_for_in_steps(tmp_path: Path) -> None:
    result = make_run(tmp_path, "echo long-lived", timeout=30 * 86400.0).run()
    assert result.outcome is executor.Outcome.COMPLETED, result.message
    assert "long-lived" in result.output_tail


@pytest.mark.parametrize(
    ("command", "code"), [("exit 3", 3), ("false", 1), ("kill -9 $$", 137), ("kill -TERM $$", 143)]
)
def test_non_zero_exit_fails_with_exit_code(tmp_path: Path, command: str, code: int) -> None:
    result = make_run(tmp_path, command).run()
    assert result.outcome is executor.Outcome.FAILED
    assert result.exit_code == code
    assert result.failure_kind is executor.FailureKind.TASK_ERROR
    assert str(code) in result.message


def test_output_tail_is_bounded(tmp_path: Path) -> None:
    command = "head -c 300000 /dev/zero | tr '\\0' a; echo; echo END; printf '\\xff'"
    result = make_run(tmp_path, command, output_limit=1000).run()
    tail = result.output_tail.encode()
    assert len(result.output_tail) <= 1000
    assert result.output_tail.endswith("END\n\ufffd")
    assert tail.startswith(b"a")


def test_environment_has_working_dir_and_task_id(tmp_path: Path) -> None:
    run = make_run(
        tmp_path,
        'echo "$WORKING_DIR|$TASK_ID|$FOO|$PWD|${PATH:+path}"',
        env={"FOO": "bar", "TASK_ID": "overridden?"},
        task_id="t/7",
        attempt=2,
    )
    result = run.run()
    sandbox = str(tmp_path / "work" / "tasks" / "t_7-a2")
    assert result.output_tail.strip() == f"{sandbox}|t/7|bar|{sandbox}|path"


def test_sandbox_removed_unless_kept(tmp_path: Path) -> None:
    run = make_run(tmp_path, "echo x > file")
    assert run.run().outcome is executor.Outcome.COMPLETED
    assert not run.sandbox.exists()
    kept = make_run(tmp_path, "echo x > file", keep=True, attempt=2)
    kept.run()
    assert (kept.sandbox / "file").read_text() == "x\n"


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    run = make_run(tmp_path, f"sleep 1000 & echo $! > {pidfile}; wait", timeout=1.0)
    started = time.monotonic()
    thread, results = start(run)
    grandchild = read_pid(pidfile)
    assert alive(grandchild)
    thread.join(timeout=15)
    assert results, "run() did not return"
    result = results[0]
    assert result.outcome is executor.Outcome.TIMED_OUT
    assert result.failure_kind is executor.FailureKind.TASK_ERROR
    assert "timed out" in result.message
    assert time.monotonic() - started < 10
    wait_for(lambda: not alive(grandchild))


def test_timeout_escalates_to_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "stubborn.pid"
    command = f"trap '' TERM; bash -c \"trap '' TERM; echo \\$\\$ > {pidfile}; sleep 1000\"; :"
    thread, results = start(make_run(tmp_path, command, timeout=0.5))
    stubborn = read_pid(pidfile)
    thread.join(timeout=15)
    assert results[0].outcome is executor.Outcome.TIMED_OUT
    assert results[0].exit_code == 137
    wait_for(lambda: not alive(stubborn))


def test_cancel_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    run = make_run(tmp_path, f"sleep 1000 & echo $! > {pidfile}; wait")
    thread, results = start(run)
    grandchild = read_pid(pidfile)
    # The command may write its file before the run's thread has stored the process.
    wait_for(lambda: run.pid is not None)
    leader = run.pid
    assert leader is not None
    run.stop(executor.StopReason.CANCELLED)
    thread.join(timeout=15)
    assert results[0].outcome is executor.Outcome.CANCELLED
    assert results[0].message == "cancelled by the scheduler"
    wait_for(lambda: not alive(grandchild) and not alive(leader))


def test_shutdown_stop_reports_infrastructure_failure(tmp_path: Path) -> None:
    pidfile = tmp_path / "p"
    run = make_run(tmp_path, f"echo $$ > {pidfile}; sleep 1000")
    thread, results = start(run)
    read_pid(pidfile)
    run.stop(executor.StopReason.SHUTDOWN)
    thread.join(timeout=15)
    assert results[0].outcome is executor.Outcome.FAILED
    assert results[0].failure_kind is executor.FailureKind.INFRASTRUCTURE
    assert results[0].message == "worker shutting down"


def test_stop_before_start_never_runs_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    run = make_run(tmp_path, f"touch {marker}")
    run.stop(executor.StopReason.CANCELLED)
    assert run.run().outcome is executor.Outcome.CANCELLED
    assert not marker.exists()


def test_background_leftovers_are_killed_when_the_command_exits(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    started = time.monotonic()
    result = make_run(tmp_path, f"sleep 1000 & echo $! > {pidfile}; echo done").run()
    assert result.outcome is executor.Outcome.COMPLETED
    assert result.output_tail == "done\n"
    assert time.monotonic() - started < 10
    wait_for(lambda: not alive(int(pidfile.read_text())))


def test_tasks_do_not_share_a_process_group_with_the_worker(tmp_path: Path) -> None:
    # Field 5 of /proc/PID/stat is the process group (no procps needed).
    result = make_run(tmp_path, "cut -d' ' -f5 /proc/$$/stat").run()
    assert int(result.output_tail.strip()) != os.getpgrp()


def test_escapees_of_the_process_group_are_ended_with_the_task(tmp_path: Path) -> None:
    """Without a reaper (orphans go to init) the executor finds them in all of /proc by the
    task's marker; the one that ignores SIGTERM gets SIGKILL after the grace."""
    pids = tmp_path / "escapees.pids"
    command = (
        f"setsid sleep 1000 & echo $! >> {pids}; "
        f"(setsid bash -c 'trap \"\" TERM; echo $$ >> {pids}; while :; do sleep 0.1; done' &); "
        f"until [ $(wc -l < {pids}) = 2 ]; do sleep 0.01; done; echo done"
    )
    started = time.monotonic()
    result = make_run(tmp_path, command).run()
    took = time.monotonic() - started
    # (The loop may report its `sleep 0.1` killed: it writes to the task's output too.)
    assert result.outcome is executor.Outcome.COMPLETED
    assert result.output_tail.startswith("done\n")
    escaped = [int(pid) for pid in pids.read_text().split()]
    assert len(escaped) == 2 and not any(alive(pid) for pid in escaped)
    assert 0.5 <= took < 5  # the kill grace (0.5 s here) for the one that ignored SIGTERM
