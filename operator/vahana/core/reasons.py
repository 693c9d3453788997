"""Why a pending task waits, in words a user can act on."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from vahana.core import matching, models

_LIVE = (models.WorkerState.AVAILABLE, models.WorkerState.BUSY)
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def kind(reason: str) -> str:
    """A pending reason without its figures: "all # matching worker(s) are busy" whatever the
    count. A mirror that rewrites a reason only when its kind changes tells a waiting task's
    owner what changed (the pool's workers came) without a write per worker started."""
    return _NUMBERS.sub("#", reason)


def explain_wait(
    task: models.TaskRecord, workers: Sequence[models.WorkerRecord], now: float
) -> str:
    """The reason a PENDING task is not running; `task` may stand for all tasks of its shape."""
    if task.cancel_requested:
        return "cancelling"
    if task.not_before > now:
        until = time.strftime("%H:%M:%S", time.localtime(task.not_before))
        return f"retry backoff until {until}" + (f" after: {task.message}" if task.message else "")
    where = f"pool {task.pool}" if task.pool else "any pool"
    in_pool = [w for w in workers if not task.pool or w.pool == task.pool]
    live = [w for w in in_pool if w.state in _LIVE]
    if not live:
        if in_pool:
            return f"no live worker in {where} ({len(in_pool)} draining or unhealthy)"
        return f"no worker registered in {where} yet (waiting for workers to start)"
    need = task.spec.resources
    capable = [w for w in live if matching.could_ever_fit(need, w)]
    if not capable:
        return "no worker can run it: " + _shortfall(need, live)
    if all(matching.outlives_allocation(task.spec.timeout_seconds, w, now) for w in capable):
        return f"no worker's allocation lasts the task's {task.spec.timeout_seconds:g}s timeout"
    return f"all {len(capable)} matching worker(s) are busy"


def _shortfall(need: models.Resources, workers: Sequence[models.WorkerRecord]) -> str:
    problems: list[str] = []
    max_cpu = max(w.capacity.cpu_cores for w in workers)
    if need.cpu_cores > 0 and all(0 < w.capacity.cpu_cores < need.cpu_cores for w in workers):
        problems.append(f"needs {need.cpu_cores:g} cpu, the largest worker has {max_cpu:g}")
    max_memory = max(w.capacity.memory_bytes for w in workers)
    if need.memory_bytes > 0 and all(
        0 < w.capacity.memory_bytes < need.memory_bytes for w in workers
    ):
        problems.append(
            f"needs {_mib(need.memory_bytes)} memory, the largest worker has {_mib(max_memory)}"
        )
    max_gpus = max(w.capacity.gpus for w in workers)
    if need.gpus > max_gpus:
        problems.append(f"needs {need.gpus} gpu(s), the largest worker has {max_gpus}")
    missing = [
        f"{key}={value}"
        for key, value in sorted(need.labels.items())
        if not any(w.capacity.labels.get(key) == value for w in workers)
    ]
    if missing:
        problems.append("no worker has label(s) " + ", ".join(missing))
    return "; ".join(problems) or "no single worker meets all its requirements together"


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f}Mi"
