"""The janitor removes sandboxes off the task's thread and leaves nothing queued when closed."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from vahana_worker import executor


def test_removals_run_on_the_janitors_thread_and_close_waits_for_them(tmp_path: Path) -> None:
    janitor = executor.Janitor()
    threads: set[str] = set()
    sandboxes = []
    for i in range(20):
        sandbox = tmp_path / f"task-{i}"
        (sandbox / "tmp").mkdir(parents=True)
        sandboxes.append(sandbox)

        def remove(sandbox: Path = sandbox) -> None:
            threads.add(threading.current_thread().name)
            shutil.rmtree(sandbox)

        janitor.remove(remove)
    janitor.close()
    assert threads == {"janitor"}
    assert not any(sandbox.exists() for sandbox in sandboxes)


def test_after_close_a_removal_runs_at_once_where_it_is_asked() -> None:
    janitor = executor.Janitor()
    janitor.close()
    ran: list[str] = []
    janitor.remove(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name]


def test_a_failing_removal_does_not_stop_the_others(tmp_path: Path) -> None:
    janitor = executor.Janitor()
    done: list[int] = []

    def fail() -> None:
        raise OSError("read-only")

    janitor.remove(fail)
    janitor.remove(lambda: done.append(1))
    janitor.close()
    assert done == [1]


def test_removals_asked_for_in_a_burst_run_in_one_round_and_close_cuts_the_gap_short() -> None:
    janitor = executor.Janitor(gap=60.0)
    first_done = threading.Event()
    rounds: list[list[int]] = [[]]
    janitor.remove(lambda: (rounds[-1].append(0), first_done.set()))
    assert first_done.wait(10), "the first removal ran"
    rounds.append([])  # what is asked for now waits for the next round
    for i in range(1, 6):
        janitor.remove(lambda i=i: rounds[-1].append(i))  # type: ignore[misc]
    started = time.monotonic()
    janitor.close()
    assert time.monotonic() - started < 10, "close() did not wait out the 60 s gap"
    assert rounds == [[0], [1, 2, 3, 4, 5]]
