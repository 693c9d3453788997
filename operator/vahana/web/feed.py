"""What the dashboard knows without asking the store: the scheduler's task listener and memory.

`Feed` is a task listener (told of every change once it is committed) that costs a few
dictionary operations per change: finished-task counters by phase, the last hour's series, and
the newest version of each task a page watches. The overview is built from it and from the
scheduler's memory (workers, leases, queue depths kept by the queue): its cost grows with the
number of workers, never with the number of tasks.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any

from vahana.core import clock as clocks
from vahana.core import models
from vahana.scheduling import scheduler as scheduler_module
from vahana.web import series as series_module
from vahana.web import views

P = models.TaskPhase
_FINAL = models.FINAL_PHASES


class Feed:
    def __init__(
        self,
        sched: scheduler_module.Scheduler,
        *,
        clock: clocks.Clock = clocks.system_clock,
        finished: Mapping[models.TaskPhase, int] | None = None,
    ) -> None:
        """`finished`: tasks already final in the store by phase (read once, before the
        scheduler starts, so that no change is counted twice)."""
        self._scheduler = sched
        self._clock = clock
        self.finished: dict[models.TaskPhase, int] = dict.fromkeys(_FINAL, 0)
        for phase, count in (finished or {}).items():
            if phase in _FINAL:
                self.finished[phase] = count
        self.series = series_module.Series()
        self.changes = 0
        """Task changes seen (pages re-read what they show when it moves)."""
        self._watched: collections.Counter[str] = collections.Counter()
        self._changed: dict[str, models.TaskRecord] = {}
        self.on_change: Callable[[], None] = lambda: None
        """Called after a change to a watched task (wakes the streams)."""

    # -- the listener: on the scheduler's path, keep it small --------------------------------
    def __call__(self, task: models.TaskRecord) -> None:
        self.changes += 1
        phase = task.phase
        if phase in _FINAL:
            self.finished[phase] += 1
            stamp = task.finished_at if task.finished_at is not None else self._clock()
            self.series.add_final(stamp, completed=phase is P.COMPLETED)
        elif phase is P.ASSIGNED and task.assigned_at is not None:
            # From when it could first run: its submission, or the end of a retry backoff.
            if task.not_before > task.created_at:
                self.series.add_latency(task.assigned_at, task.assigned_at - task.not_before)
            elif task.attempt <= 1:
                self.series.add_latency(task.assigned_at, task.assigned_at - task.created_at)
        if task.id in self._watched:
            self._changed[task.id] = task
            self.on_change()

    # -- watched tasks -----------------------------------------------------------------------
    def watch(self, task_ids: set[str]) -> None:
        self._watched.update(task_ids)

    def unwatch(self, task_ids: set[str]) -> None:
        self._watched.subtract(task_ids)
        for task_id in task_ids:
            if self._watched[task_id] <= 0:
                del self._watched[task_id]

    def take_changed(self) -> dict[str, models.TaskRecord]:
        """The newest version of each watched task changed since the last call."""
        changed, self._changed = self._changed, {}
        return changed

    def sample_queue(self) -> None:
        self.series.sample_queue(self._clock(), self._scheduler.queue_length)

    # -- the overview ------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        """Counters of the overview page (not the series: `history()` / `series_since()`)."""
        sched = self._scheduler
        phases = dict.fromkeys([p.value for p in P], 0)
        phases[P.PENDING.value] = sched.queue_length
        workers_by_state = dict.fromkeys([s.value for s in models.WorkerState], 0)
        pools: dict[str, dict[str, int]] = {}
        for worker in sched.list_workers():
            workers_by_state[worker.state.value] += 1
            pool = pools.setdefault(
                worker.pool, {"running": 0, "assigned": 0, "workers": 0, "slots": 0}
            )
            pool["workers"] += 1
            pool["slots"] += worker.max_tasks
            for task_id in worker.leases:
                task = sched.live_task(task_id)
                if task is not None and task.phase is P.RUNNING:
                    pool["running"] += 1
                    phases[P.RUNNING.value] += 1
                else:
                    pool["assigned"] += 1
                    phases[P.ASSIGNED.value] += 1
        for phase, count in self.finished.items():
            phases[phase.value] = count
        queue = [
            {"pool": pool, "priority": priority, "tasks": count}
            for (pool, priority), count in sorted(
                sched.queue_depths().items(), key=lambda item: (item[0][0], -item[0][1])
            )
        ]
        return {
            "phases": phases,
            "total": sum(phases.values()),
            "queue": queue,
            "pools": [
                {"pool": views.pool_label(name), **counts} for name, counts in sorted(pools.items())
            ],
            "workers": workers_by_state,
            "store": {"healthy": sched.store_healthy, "problem": sched.store_problem},
        }

    def now(self) -> float:
        return self._clock()

    def history(self) -> dict[str, Any]:
        return self.series.window(self._clock())

    def series_since(self, since: float) -> dict[str, Any]:
        return self.series.window(self._clock(), since=since)
