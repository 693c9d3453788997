"""Idempotent submission with the real `vahana submit` and `vahana server` processes.

The scheduler is killed (kill -9) right after it committed a large submission, before its
answer reaches the CLI; restarted on the same state dir, it answers the CLI's retry with the
ids it gave the first time, and every task exists exactly once.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.integration import harness
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
TASKS = 5000


def tasks_file(path: Path, count: int, prefix: str = "t") -> Path:
    path.write_text(
        "---\n".join(
            "apiVersion: vahana.dev/v1alpha1\nkind: Task\n"
            f"metadata: {{name: {prefix}{n}}}\nspec: {{command: 'echo {n}'}}\n"
            for n in range(count)
        )
    )
    return path


def submit(*args: str, stdout: Path, stderr: Path) -> subprocess.Popen[bytes]:
    with stdout.open("wb") as out, stderr.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "vahana.cli.main", "submit", *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )


def stored_tasks(database: Path) -> list[tuple[str, str]]:
    """(key, id) of every task the store holds, read as another process would."""
    with contextlib.closing(sqlite3.connect(database)) as reader:
        return list(reader.execute("SELECT key, id FROM tasks"))


def reported_ids(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^task/(\S+) submitted as (\S+)$", stdout, re.MULTILINE))


def kill_after_commit(
    scheduler: harness.SchedulerProcess, cli: subprocess.Popen[bytes], count: int
) -> int:
    """kill -9 of the scheduler as soon as (part of) the submission is in its store, before its
    answer: a large submission is committed in chunks, so the kill lands after the first chunk
    and, most often, before the last. Returns how many tasks the store held then."""
    wait_until(
        lambda: stored_tasks(scheduler.db_path) or cli.poll() is not None,
        timeout=120,
        interval=0.002,
        message="the submission committed",
    )
    scheduler.kill()
    assert cli.poll() is None, "the CLI got its answer before the kill"
    committed = len(stored_tasks(scheduler.db_path))
    assert 0 < committed <= count
    return committed


def test_a_submission_whose_answer_was_lost_is_retried_and_creates_each_task_once(
    state_dir: Path,
) -> None:
    scheduler = harness.SchedulerProcess(state_dir=state_dir).start()
    out, err = state_dir / "submit.out", state_dir / "submit.err"
    cli = submit(
        "-f",
        str(tasks_file(state_dir / "tasks.yaml", TASKS)),
        f"--server={scheduler.address}",
        "--retry-for=120",
        stdout=out,
        stderr=err,
    )
    try:
        committed = kill_after_commit(scheduler, cli, TASKS)
        scheduler.start()
        assert cli.wait(timeout=120) == 0, err.read_text()
        # The CLI lost the answer and asked again with the same keys ...
        assert "submitting again" in err.read_text(), err.read_text()
        # ... and got the ids the scheduler gave the first time: each task exists once.
        stored = stored_tasks(scheduler.db_path)
        assert len(stored) == TASKS
        assert len({key for key, _ in stored}) == TASKS
        assert len({key.split("/", 1)[0] for key, _ in stored}) == 1  # one run key
        by_name = {key.rsplit("/", 1)[1]: task_id for key, task_id in stored}
        assert reported_ids(out.read_text()) == by_name
        print(f"tasks={TASKS} committed at the kill={committed} stored={len(stored)} "
              "duplicates=0; the CLI said:")  # fmt: skip
        print(err.read_text())
    finally:
        stop(cli)
        scheduler.stop()


def test_after_giving_up_the_printed_key_gets_the_ids_without_submitting_twice(
    state_dir: Path,
) -> None:
    scheduler = harness.SchedulerProcess(state_dir=state_dir).start()
    path = tasks_file(state_dir / "tasks.yaml", TASKS)
    out, err = state_dir / "submit.out", state_dir / "submit.err"
    cli = submit(
        "-f", str(path), f"--server={scheduler.address}", "--retry-for=1", stdout=out, stderr=err
    )
    try:
        kill_after_commit(scheduler, cli, TASKS)
        assert cli.wait(timeout=60) == 1
        said = " ".join(err.read_text().split())
        found = re.search(r"run the command again with --idempotency-key (\S+) to get", said)
        assert found and "gave no answer" in said, said
        assert reported_ids(out.read_text()) == {}

        scheduler.start()
        again = submit(
            "-f",
            str(path),
            f"--server={scheduler.address}",
            f"--idempotency-key={found.group(1)}",
            stdout=out,
            stderr=err,
        )
        assert again.wait(timeout=120) == 0, err.read_text()
        stored = stored_tasks(scheduler.db_path)
        assert len(stored) == TASKS
        assert reported_ids(out.read_text()) == {
            key.rsplit("/", 1)[1]: task_id for key, task_id in stored
        }
    finally:
        stop(cli)
        scheduler.stop()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def test_the_same_idempotency_key_returns_the_same_tasks_and_a_new_run_submits_anew(
    scheduler: harness.SchedulerProcess, state_dir: Path
) -> None:
    path = tasks_file(state_dir / "few.yaml", 3, prefix="few-")
    runs = []
    for extra in (["--idempotency-key=nightly-1"], ["--idempotency-key=nightly-1"], []):
        out, err = state_dir / f"run-{len(runs)}.out", state_dir / f"run-{len(runs)}.err"
        cli = submit(
            "-f", str(path), f"--server={scheduler.address}", *extra, stdout=out, stderr=err
        )
        assert cli.wait(timeout=60) == 0, err.read_text()
        runs.append(reported_ids(out.read_text()))
    first, again, new_run = runs
    assert len(first) == 3 and again == first
    assert set(new_run.values()).isdisjoint(first.values())
    keys = sorted(key for key, _ in stored_tasks(scheduler.db_path))
    assert len(keys) == 6
    named = [key for key in keys if key.startswith("nightly-1/")]
    assert named == [f"nightly-1/default/few-{n}" for n in range(3)]


def test_a_submission_to_no_scheduler_fails_at_once_without_retrying(state_dir: Path) -> None:
    out, err = state_dir / "submit.out", state_dir / "submit.err"
    cli = submit(
        "-f",
        str(tasks_file(state_dir / "one.yaml", 1)),
        f"--server=127.0.0.1:{harness.free_port()}",
        "--retry-for=600",
        stdout=out,
        stderr=err,
    )
    try:
        assert cli.wait(timeout=30) == 1  # nothing was sent: no answer to wait for
    finally:
        stop(cli)
    assert "cannot reach the scheduler" in err.read_text()
    assert "submitting again" not in err.read_text()
