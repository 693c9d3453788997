"""log_streaming_cost: what sending tasks' output while they run costs the end-to-end figure.

The `end_to_end_throughput` workload (a `SchedulerProcess` with 4 real local workers, SQLite
in a temp dir) with tasks that print one line (`echo …`), run alternately with the workers
streaming output (the default: a spool file per task, sent every 0.2 s and at the end, kept
under the state dir) and without it (`VAHANA_WORKER_STREAM_OUTPUT=false`: only the status's
tail). Three rounds each, in the order on, off, off, on, on, off, so neither mode always runs
first and drift in the machine's load falls on both. The value is the throughput with
streaming as a share of the throughput without (medians of the rounds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable

from vahana.app import service
from vahana.app import settings as settings_module

from bench import scenarios
from bench.common import Result, log

ENV = "VAHANA_WORKER_STREAM_OUTPUT"


@contextlib.asynccontextmanager
async def _scheduler(workers: int) -> AsyncIterator[service.SchedulerProcess]:
    """As scenarios.scheduler_process, without a metrics endpoint (its port may be taken)."""
    with tempfile.TemporaryDirectory(prefix="vahana-bench-logs-") as tmp:
        settings = settings_module.load(
            {
                "server.port": 0,
                "store.state_dir": tmp,
                "local_pool.workers": workers,
                "metrics.port": 0,
            },
            environ={},
        )
        process = service.SchedulerProcess(settings, local_workers=workers)
        try:
            await process.start()
            await scenarios.wait_for_workers(process.scheduler, workers)
            yield process
        finally:
            await process.stop()


async def _run(count: int, workers: int) -> float:
    async with _scheduler(workers) as process:
        counter = scenarios.FinalCounter(count)
        process.scheduler.add_listener(counter)
        started = time.perf_counter()
        process.scheduler.submit(scenarios.submissions(count, command="echo one line of output"))
        await asyncio.wait_for(counter.done.wait(), scenarios.FINAL_TIMEOUT)
        elapsed = time.perf_counter() - started
        process.scheduler.remove_listener(counter)
        if counter.not_completed:
            raise RuntimeError(f"{counter.not_completed} tasks did not complete")
    return count / elapsed


def log_streaming_cost(count: int, *, workers: int = 4, rounds: int = 3) -> list[Result]:
    rates: dict[str, list[float]] = {"on": [], "off": []}
    before = os.environ.get(ENV)
    try:
        for round_number in range(rounds):
            # ABBA order: whichever runs second in a round (warm caches) alternates.
            for mode in ("on", "off") if round_number % 2 == 0 else ("off", "on"):
                # Local workers inherit the scheduler's environment.
                os.environ[ENV] = "true" if mode == "on" else "false"
                log(f"log streaming {mode}: {count} tasks, {workers} workers")
                rates[mode].append(asyncio.run(_run(count, workers)))
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    return [
        Result(
            "log_streaming_cost",
            on / off,
            "× throughput",
            detail={
                "tasks": count,
                "workers": workers,
                "command": "echo one line of output",
                "tasks_per_s_streaming": on,
                "tasks_per_s_streaming_rounds": rates["on"],
                "tasks_per_s_tail_only_rounds": rates["off"],
            },
            comparison={"tasks_per_s_tail_only": off},
        )
    ]


SCENARIOS: dict[str, Callable[[bool], list[Result]]] = {
    "log_streaming_cost": lambda full: log_streaming_cost(5_000 if full else 1_000),
}
