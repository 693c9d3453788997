"""A waiting Task's status follows its pending reason when the workers change, not only when
the task does: a reason that changed in kind is written again, one that only changed a count
is not (no write per worker started)."""

from __future__ import annotations

from builders import make_registration, make_task
from kubernetes import client as k8s
from vahana.core import clock as clocks
from vahana.k8s import mirrors
from vahana.scheduling import scheduler
from vahana.store import sqlite


def test_a_waiting_task_s_reason_is_rewritten_when_its_kind_changes() -> None:
    store = sqlite.SqliteStore(":memory:")
    try:
        sched = scheduler.Scheduler(store, clock=clocks.FakeClock(start=1_000.0))
        mirror = mirrors.TaskStatusMirror(sched, k8s.ApiClient())  # no call is made here
        [waiting] = sched.submit([make_task("w").pool("p").cpu(4).submission()])
        mirror.track(waiting, "ns", "w", None)
        mirror._dirty.clear()  # as if its first status had been written:
        mirror._tracked[waiting].reason = sched.pending_reason(sched.get_task(waiting))
        assert "no worker registered in pool p" in mirror._tracked[waiting].reason
        assert mirror.recheck_pending() == 0  # nothing changed

        sched.register(make_registration("small").pool("p").cpu(1).registration())
        assert mirror.recheck_pending() == 1  # now: no worker can run it (needs 4 cpu)
        mirror._dirty.clear()
        mirror._tracked[waiting].reason = sched.pending_reason(sched.get_task(waiting))
        assert mirror._tracked[waiting].reason.startswith("no worker can run it: needs 4 cpu")

        sched.register(make_registration("small-2").pool("p").cpu(2).registration())
        assert mirror.recheck_pending() == 0  # "the largest worker has 2": the same kind
    finally:
        store.close()
