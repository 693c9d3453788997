"""The cost of queues in the dispatch path: the scheduler-only core run (bench.scenarios) with
tasks spread over 10 queues of weights 1…10 (fair share on), and with 10 queues that each have
a quota (fair share and the quota test on every dispatch), against the same run with every
task in one queue, in the same process, alternating runs to share the machine's noise."""

from __future__ import annotations

import statistics
from typing import Any

from vahana.core import fairshare

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


SCENARIOS = {
    "scheduler_queues": lambda full: scheduler_queues(20_000 if full else 5_000),
}
