"""The zygote that forks local workers: what it reports, and that nothing outlives it."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana.cli import entry
from vahana.pools import forking

from tests.integration import harness
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def zygote() -> Iterator[forking.Zygote]:
    started = forking.Zygote()
    yield started
    started.close()


def _unused_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def _worker_argv(tmp_path: Path, name: str) -> list[str]:
    """A worker whose scheduler is not there: it keeps trying to register until stopped."""
    return [
        f"--server-address={_unused_address()}",
        f"--worker-id={name}",
        f"--working-dir={tmp_path / name}",
        "--exit-with-parent",
    ]


def test_a_forked_worker_gets_its_flags_environment_directory_and_log(
    zygote: forking.Zygote, tmp_path: Path
) -> None:
    log = tmp_path / "help.log"
    process = zygote.fork(["--help"], env={"COLUMNS": "80"}, log_path=log, cwd=str(tmp_path))
    assert process.wait(timeout=30) == 0
    assert "usage: vahana-worker" in log.read_text()

    refused = zygote.fork(
        ["--max-tasks=none"], env=dict(os.environ), log_path=tmp_path / "bad.log", cwd="/"
    )
    assert refused.wait(timeout=30) == 2  # argparse's exit status for a bad flag
    assert "--max-tasks" in (tmp_path / "bad.log").read_text()


def test_a_signalled_worker_drains_and_its_exit_is_reported(
    zygote: forking.Zygote, tmp_path: Path
) -> None:
    log = tmp_path / "w.log"
    process = zygote.fork(
        _worker_argv(tmp_path, "w"), env=dict(os.environ), log_path=log, cwd=str(tmp_path)
    )
    assert process.poll() is None
    wait_until(
        lambda: 'msg="worker starting" worker_id=w ' in log.read_text(),
        timeout=30,
        message="the worker to start",
    )
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not harness.pid_alive(process.pid)
    process.send_signal(signal.SIGTERM)  # a no-op once it has ended


def test_ps_shows_a_forked_worker_by_its_own_command_line(
    zygote: forking.Zygote, tmp_path: Path
) -> None:
    argv = _worker_argv(tmp_path, "titled")
    process = zygote.fork(argv, env=dict(os.environ), log_path=tmp_path / "w.log", cwd="/")
    cmdline = Path(f"/proc/{process.pid}/cmdline")

    def titled() -> bool:
        return cmdline.read_bytes().startswith(b"vahana-worker ")

    wait_until(titled, timeout=30, message="the worker's own command line")
    shown = cmdline.read_bytes().rstrip(b"\0").decode()
    assert shown == " ".join(["vahana-worker", *argv])
    assert "zygote" not in shown
    # top and pgrep show the process name, which follows the title.
    assert Path(f"/proc/{process.pid}/comm").read_text().startswith("vahana-worker")
    # Titled at once after the fork, before its SIGTERM handler is in place: not drained here.
    process.kill()
    assert process.wait(timeout=30) == -signal.SIGKILL


def test_when_the_zygote_dies_its_workers_end_and_are_reported_killed(
    zygote: forking.Zygote, tmp_path: Path
) -> None:
    workers = [
        zygote.fork(
            _worker_argv(tmp_path, name),
            env=dict(os.environ),
            log_path=tmp_path / f"{name}.log",
            cwd=str(tmp_path),
        )
        for name in ("a", "b")
    ]
    os.kill(zygote.pid, signal.SIGKILL)
    codes = [worker.wait(timeout=30) for worker in workers]
    assert codes == [-signal.SIGKILL, -signal.SIGKILL]
    wait_until(
        lambda: not any(harness.pid_alive(worker.pid) for worker in workers),
        timeout=30,
        message="the orphaned workers to be gone",
    )
    assert not zygote.alive()
    with pytest.raises(OSError, match="zygote"):
        zygote.fork(["--help"], env={}, log_path=tmp_path / "late.log", cwd="/")


def test_a_bad_request_is_answered_with_an_error_and_the_zygote_goes_on(
    zygote: forking.Zygote, tmp_path: Path
) -> None:
    with pytest.raises(OSError, match="bad request"):
        zygote.fork(["--help"], env={}, log_path=tmp_path / "no" / "such" / "dir.log", cwd="/")
    assert zygote.fork(["--help"], env={}, log_path=tmp_path / "ok.log", cwd="/").wait(30) == 0


def test_a_zygote_started_early_is_the_one_the_next_pool_takes() -> None:
    forking.start_early()
    early = forking.take()
    try:
        assert early.alive()
        later = forking.take(sys.executable)
        try:
            assert later is not early  # taken once, then a new one
        finally:
            later.close()
    finally:
        early.close()


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["run", "-f", "tasks.yaml"], True),
        (["run", "-f", "tasks.yaml", "--workers", "2"], True),
        (["run", "-f", "tasks.yaml", "--workers", "0"], False),
        (["run", "-f", "tasks.yaml", "--workers=0"], False),
        (["run", "-f", "tasks.yaml", "--pool-file", "pools.yaml"], False),
        (["run", "--help"], False),
        (["get", "tasks"], False),
        (["server"], False),
        ([], False),
    ],
)
def test_the_entry_point_starts_a_zygote_only_for_a_run_on_local_workers(
    argv: list[str], wanted: bool
) -> None:
    assert entry.wants_local_workers(argv) is wanted


def test_a_local_pool_whose_zygote_died_forks_its_next_workers_from_a_new_one(
    tmp_path: Path,
) -> None:
    from vahana.pools import base, local

    pool = local.LocalPool(
        local.LocalPoolConfig(
            server_address=_unused_address(), working_dir=tmp_path / "w", log_dir=tmp_path / "logs"
        )
    )
    ended: list[str] = []
    pool.exit_listener = lambda worker_id, why: ended.append(f"{worker_id}: {why}")
    try:
        [first] = pool.start_workers(1)
        zygote_pid = _parent_of(pool.pid_of(first))
        os.kill(zygote_pid, signal.SIGKILL)
        wait_until(lambda: ended, timeout=30, message="the pool to tell the worker's end")
        assert ended == [f"{first}: its process (pid {pool.pid_of(first)}) was killed by signal 9"]
        [second] = pool.start_workers(1)
        assert _parent_of(pool.pid_of(second)) != zygote_pid
        states = {w.worker_id: w.state for w in pool.list_workers()}
        assert states == {first: base.PoolWorkerState.FAILED, second: base.PoolWorkerState.RUNNING}
    finally:
        pool.close(timeout=30)
    assert not harness.pid_alive(pool.pid_of(second))


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def _started(log: Path) -> bool:
    return log.exists() and "worker starting" in log.read_text()


def _fork_two(
    zygote: forking.Zygote, tmp_path: Path, *, start_wait: float, address: str = ""
) -> list[forking.ForkedProcess]:
    """Workers "first" and "second", forked together (one start); `address`: their scheduler
    (default: none there, so they never register)."""
    workers = []
    for name in ("first", "second"):
        argv = _worker_argv(tmp_path, name)
        if address:
            argv[0] = f"--server-address={address}"
        workers.append(
            zygote.fork(
                argv,
                env=dict(os.environ),
                log_path=tmp_path / f"{name}.log",
                cwd=str(tmp_path),
                start_wait=start_wait,
            )
        )
    return workers


def _stop(workers: list[forking.ForkedProcess]) -> None:
    """SIGTERM to each; each drains and exits 0."""
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(timeout=30) == 0


def test_workers_forked_together_wait_for_the_first_one_which_opens_the_gate_when_it_ends(
    zygote: forking.Zygote, tmp_path: Path
) -> None:
    # The first cannot reach its scheduler: it never starts a task, so the second waits for
    # its (long) start_wait, until the first exits.
    first, second = _fork_two(zygote, tmp_path, start_wait=120)
    wait_until(lambda: _started(tmp_path / "first.log"), timeout=30, message="the first to start")
    # Its start-up (the same as the first's) has had time to begin, and has not.
    wait_until(
        lambda: (
            "registering" in (tmp_path / "first.log").read_text()
            or "RegisterWorker" in (tmp_path / "first.log").read_text()
        ),
        timeout=30,
        message="the first worker trying to register",
    )
    assert not _started(tmp_path / "second.log")
    _stop([first])
    wait_until(lambda: _started(tmp_path / "second.log"), timeout=30, message="the second to start")
    _stop([second])


def test_a_worker_stopped_while_it_waits_for_its_turn_leaves_cleanly(
    zygote: forking.Zygote, tmp_path: Path
) -> None:
    first, second = _fork_two(zygote, tmp_path, start_wait=120)
    wait_until(lambda: _started(tmp_path / "first.log"), timeout=30, message="the first to start")
    # Waiting, it already shows as the worker it is about to be.
    wait_until(
        lambda: b"vahana-worker" in Path(f"/proc/{second.pid}/cmdline").read_bytes(),
        timeout=30,
        message="the waiting worker's command line",
    )
    _stop([second])
    assert not _started(tmp_path / "second.log")
    _stop([first])


def test_a_worker_waits_for_the_first_one_no_longer_than_its_start_wait(
    zygote: forking.Zygote, tmp_path: Path
) -> None:
    workers = _fork_two(zygote, tmp_path, start_wait=0.2)
    wait_until(
        lambda: all(_started(tmp_path / f"{name}.log") for name in ("first", "second")),
        timeout=30,
        message="both workers started though the first never ran a task",
    )
    _stop(workers)


def test_the_first_worker_s_first_task_lets_the_others_start(
    zygote: forking.Zygote, scheduler: harness.SchedulerProcess, tmp_path: Path
) -> None:
    client = harness.Client(scheduler.address)
    release = tmp_path / "release"  # the task runs until the test is done with it
    workers: list[forking.ForkedProcess] = []
    try:
        [task_id] = client.submit(
            harness.submission(f"until [ -e {release} ]; do sleep 0.05; done", "held")
        )
        # Only the first one's task can open the gate in time.
        workers = _fork_two(zygote, tmp_path, start_wait=120, address=scheduler.address)
        registered = wait_until(
            lambda: (lambda ws: ws if len(ws) == 2 else None)(client.list_workers()),
            timeout=30,
            message="both workers registered",
        )
        assert client.get(task_id).worker_id == "first"
        assert {w.worker_id for w in registered} == {"first", "second"}
    finally:
        release.touch()
        _stop(workers)
        client.close()


def test_with_nothing_to_run_the_first_worker_lets_the_others_start_once_registered(
    zygote: forking.Zygote, scheduler: harness.SchedulerProcess, tmp_path: Path
) -> None:
    client = harness.Client(scheduler.address)
    workers: list[forking.ForkedProcess] = []
    try:
        # Only the first one's registration can open the gate in time.
        workers = _fork_two(zygote, tmp_path, start_wait=120, address=scheduler.address)
        wait_until(
            lambda: len(client.list_workers()) == 2, timeout=30, message="both workers registered"
        )
    finally:
        _stop(workers)
        client.close()


def test_a_bad_start_wait_is_refused(zygote: forking.Zygote, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="start_wait"):
        zygote.fork(["--help"], env={}, log_path=tmp_path / "x.log", cwd="/", start_wait=-1)
