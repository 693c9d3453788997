"""What `vahana run` says and does beyond running its file: Ctrl-C cancels the unfinished tasks
at once and says what became of them, a second Ctrl-C quits at once and still leaves no task
process behind; a task that no worker can run says why it waits; a state dir given again
says that the earlier run's unfinished tasks run too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration import harness
from tests.integration.test_cli import ENTRY_POINT
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _tasks(folder: Path, command: str, count: int, extra: str = "") -> Path:
    path = folder / "tasks.yaml"
    path.write_text(
        "---\n".join(
            f"apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {{name: t{i}}}\n"
            f"spec:\n  command: '{command}'\n{extra}"
            for i in range(count)
        )
    )
    return path


def _until_started(folder: Path, count: int) -> None:
    """Waits until `count` tasks have touched their `<task id>.started` file in `folder`."""
    wait_until(
        lambda: len(list(folder.glob("*.started"))) == count,
        timeout=30,
        message=f"{count} tasks running",
    )


def _sleeping(seconds: str) -> list[int]:
    """Pids of the `sleep <seconds>` processes on this machine (the seconds are unusual)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", seconds.encode()]:
                found.append(int(entry))
    return found


class Run:
    """`vahana run -f` on 2 local workers, its output read as it comes (a line at a time)."""

    def __init__(self, tasks: Path, *flags: str) -> None:
        path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
        self.process = subprocess.Popen(
            [sys.executable, "-c", ENTRY_POINT, "run", "-f", str(tasks), "--workers=2", *flags],
            cwd=tasks.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **path},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def line_starting(self, prefix: str, timeout: float = 30) -> str:
        return wait_until(
            lambda: next((line for line in self.lines if line.startswith(prefix)), None),
            timeout=timeout,
            message=f"a line starting {prefix!r}; so far: {self.lines}",
        )

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def end(self, timeout: float) -> tuple[int, str]:
        """The exit status and the whole output."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, "\n".join(self.lines)


@pytest.fixture
def run_of() -> Iterator[Callable[[Path], Run]]:
    started: list[Run] = []

    def start(tasks: Path) -> Run:
        started.append(Run(tasks))
        return started[-1]

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def test_ctrl_c_cancels_the_unfinished_tasks_and_says_what_became_of_them(
    tmp_path: Path, run_of
) -> None:
    tasks = _tasks(tmp_path, f"touch {tmp_path}/$TASK_ID.started; sleep 3107", 4)
    run = run_of(tasks)
    _until_started(tmp_path, 2)  # one on each worker
    run.interrupt()
    code, out = run.end(timeout=30)
    assert code == 130, out
    assert "interrupted: cancelling 4 unfinished task(s), 2 of them on workers" in out
    assert "0 of 4 task(s) completed; cancelled: 2 on workers, 2 still queued" in out
    assert out.count(": CANCELLED") == 4
    assert "did not stop in time" not in out  # the workers had nothing left to finish
    assert not _sleeping("3107"), "the running tasks' processes were stopped"


def test_a_second_ctrl_c_quits_at_once_and_no_task_process_is_left(tmp_path: Path, run_of) -> None:
    # The tasks ignore SIGTERM: cancelled, they would hold the run for the kill grace.
    tasks = _tasks(tmp_path, f'trap "" TERM; touch {tmp_path}/$TASK_ID.started; sleep 3108', 2)
    run = run_of(tasks)
    _until_started(tmp_path, 2)
    run.interrupt()
    assert "Ctrl-C again to quit at once" in run.line_starting("interrupted:", timeout=10)
    run.interrupt()
    code, out = run.end(timeout=10)
    assert code == 130, out
    assert "completed; cancelled" not in out, "it did not wait for the cancelled tasks"
    # The workers were killed with the run; their guardians end what their tasks left.
    wait_until(lambda: not _sleeping("3108"), timeout=20, message="no task process left")


def test_a_task_no_worker_can_run_says_why_it_waits(tmp_path: Path, run_of) -> None:
    tasks = _tasks(tmp_path, "true", 1, "  workerSelector: {site: lab}\n")
    run = run_of(tasks)
    waiting = run.line_starting("waiting: no worker can run it")
    assert waiting == "waiting: no worker can run it: no worker has label(s) site=lab"
    run.interrupt()
    code, out = run.end(timeout=30)
    assert code == 130, out
    assert "cancelled: 0 on workers, 1 still queued" in out


def test_a_run_on_a_state_dir_with_unfinished_tasks_says_they_run_too(
    tmp_path: Path, state_dir: Path
) -> None:
    earlier = harness.SchedulerProcess(state_dir=state_dir).start()  # no workers: they stay queued
    client = harness.Client(earlier.address)
    try:
        client.submit(harness.submission("true", "left-1"), harness.submission("true", "left-2"))
    finally:
        client.close()
        earlier.stop()
    tasks = _tasks(tmp_path, "true", 1)
    run = Run(tasks, "--state-dir", str(state_dir))
    code, out = run.end(timeout=60)
    assert code == 0, out
    assert "the state dir holds 2 unfinished task(s) of an earlier run: they run too" in out


def test_a_run_on_pool_files_says_where_its_tasks_go(tmp_path: Path) -> None:
    pools = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "workerpool-local.yaml"
    run = Run(_tasks(tmp_path, "true", 1), "--pool-file", str(pools))
    code, out = run.end(timeout=60)
    assert code == 0, out
    assert "submitted 1 task(s) to the pools of --pool-file" in out


def test_a_run_without_local_workers_says_where_a_worker_can_register(tmp_path: Path) -> None:
    run = Run(_tasks(tmp_path, "true", 1), "--workers=0")
    told = run.line_starting("no local workers:")
    address = told.split("register at ", 1)[1].split(",", 1)[0]
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vahana_worker",
            f"--server-address={address}",
            "--worker-id=w1",
            f"--working-dir={tmp_path / 'w1'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        code, out = run.end(timeout=60)  # the worker that registered there ran the task
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert code == 0, out
    assert "all 1 task(s) completed" in out
