"""Queues and arrays in the dispatch path.

scheduler_queues: the scheduler-only core run (bench.scenarios) with tasks spread over 10
queues of weights 1…10 (fair share on), and with 10 queues that each have a quota (fair share
and the quota test on every dispatch), against the same run with every task in one queue, in
the same process, alternating runs to share the machine's noise.
array_dispatch: an array of 10,000 instances through the same core run."""

from __future__ import annotations

import statistics
import time
from typing import Any

from vahana.core import arrays, fairshare, models

from bench import scenarios
from bench.common import Result, log

QUEUES = 10


def _configs(quota: bool) -> list[fairshare.QueueConfig]:
    quotas = (fairshare.Quota(tasks=1_000_000),) if quota else ()
    return [
        fairshare.QueueConfig(f"q{i}", weight=float(i + 1), quotas=quotas) for i in range(QUEUES)
    ]


def scheduler_queues(count: int, workers: int = 4, rounds: int = 3) -> list[Result]:
    results = []
    variants: dict[str, list[fairshare.QueueConfig]] = {
        "one_queue": [],
        "ten_queues": _configs(quota=False),
        "ten_queues_with_quotas": _configs(quota=True),
    }
    for label, per_poll in (("per_task", 1), ("batched", 64)):
        for store_kind in ("null", "sqlite"):
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, configs in variants.items():
                    log(f"scheduler queues ({label}, {store_kind} store, {name}): {count} tasks")
                    run = scenarios.core_run(
                        count,
                        workers=workers,
                        per_poll=per_poll,
                        store_kind=store_kind,
                        queues=configs,
                    )
                    cpu[name].append(run["cpu_us_per_task"])
            median = {name: statistics.median(values) for name, values in cpu.items()}
            reference = median["one_queue"]
            detail: dict[str, Any] = {
                "tasks": count,
                "workers": workers,
                "tasks_per_poll": per_poll,
                "store": store_kind,
                "rounds": rounds,
                "cpu_us_per_task_each": {k: [round(v, 1) for v in vs] for k, vs in cpu.items()},
            }
            results.append(
                Result(
                    f"scheduler_queues_{label}_{store_kind}",
                    median["ten_queues"],
                    "µs/task",
                    detail=detail,
                    comparison={
                        "one_queue_cpu_us_per_task": reference,
                        "ten_queues_difference_percent": 100
                        * (median["ten_queues"] / reference - 1),
                        "with_quotas_cpu_us_per_task": median["ten_queues_with_quotas"],
                        "with_quotas_difference_percent": 100
                        * (median["ten_queues_with_quotas"] / reference - 1),
                    },
                )
            )
    return results


def array_dispatch(count: int, workers: int = 4, rounds: int = 3) -> list[Result]:
    """An array of `count` instances (one Task, expanded by `core.arrays`) through the
    scheduler-only core run, against `count` plain tasks in the same process."""
    array = models.Submission(
        models.TaskSpec(name="sweep", command="true"), array=models.ArraySpec(count)
    )
    results = []
    for label, per_poll in (("per_task", 1), ("batched", 64)):
        seconds: dict[str, list[float]] = {"array": [], "plain": []}
        cpu: dict[str, list[float]] = {"array": [], "plain": []}
        expand: list[float] = []
        for _ in range(rounds):
            started = time.perf_counter()
            instances = arrays.expand(array)
            expand.append(time.perf_counter() - started)
            for name, tasks in (("array", instances), ("plain", [])):
                log(f"array dispatch ({label}, {name}): {count} tasks")
                run = scenarios.core_run(
                    count, workers=workers, per_poll=per_poll, store_kind="sqlite", tasks=tasks
                )
                seconds[name].append(run["seconds"])
                cpu[name].append(run["cpu_us_per_task"])
        best = {name: min(values) for name, values in seconds.items()}
        results.append(
            Result(
                f"array_dispatch_{label}",
                count / best["array"],
                "instances/s",
                detail={
                    "instances": count,
                    "workers": workers,
                    "tasks_per_poll": per_poll,
                    "store": "SQLite (WAL) in a temp dir",
                    "rounds": rounds,
                    "seconds_each": [round(v, 2) for v in seconds["array"]],
                    "expand_seconds": min(expand),
                    "cpu_us_per_instance": statistics.median(cpu["array"]),
                },
                comparison={
                    "plain_tasks_per_s": count / best["plain"],
                    "plain_cpu_us_per_task": statistics.median(cpu["plain"]),
                },
            )
        )
    return results


SCENARIOS = {
    "scheduler_queues": lambda full: scheduler_queues(20_000 if full else 5_000),
    "array_dispatch": lambda full: array_dispatch(10_000),
}
