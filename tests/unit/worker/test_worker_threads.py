"""ThreadReuser: task threads are reused, started only when all are busy, and survive errors."""

from __future__ import annotations

import threading

from vahana_worker import threads
from waiting import wait_until

DEADLINE = 10.0


def test_jobs_one_after_another_share_one_thread() -> None:
    reuser = threads.ThreadReuser("task")
    names: list[str] = []
    for _ in range(5):
        done = threading.Event()

        def job(done: threading.Event = done) -> None:
            names.append(threading.current_thread().name)
            done.set()

        reuser.submit(job)
        assert done.wait(DEADLINE)
        # The thread counts itself idle just after the job returns: wait for that.
        wait_until(lambda: reuser.idle == 1, timeout=DEADLINE, message="thread idle again")
    assert set(names) == {"task-1"} and reuser.threads == 1


def test_a_job_submitted_while_all_threads_are_busy_gets_a_new_thread() -> None:
    reuser = threads.ThreadReuser("task")
    release = threading.Event()
    started = threading.Barrier(3, timeout=DEADLINE)
    for _ in range(2):
        reuser.submit(lambda: (started.wait(), release.wait(DEADLINE)))
    started.wait()  # both run at once: two threads
    release.set()
    assert reuser.threads == 2


def test_a_job_that_raises_leaves_its_thread_serving() -> None:
    reuser = threads.ThreadReuser("task")
    ran = threading.Event()

    def broken() -> None:
        raise RuntimeError("bug")

    reuser.submit(broken)
    reuser.submit(ran.set)
    assert ran.wait(DEADLINE)
