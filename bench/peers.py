"""One runner of the side-by-side comparison, run in its own process: N `bash -c true` on S slots.

    python -m bench.peers RUNNER COUNT SLOTS MARKS_FILE

RUNNER is `hyperqueue`, `dask`, `parsl` or `vahana` (the benchmark's in-process harness). Each
starts its system as its Python API documents, runs the N tasks, shuts the system down and writes
JSON marks (wall clock, `time.time()`) to MARKS_FILE: `ready` (the system up), `submitted`,
`done` (every task finished), plus `failed` (tasks that did not succeed). The comparison runs
this module under `bench.reaper`, which times the whole process and adds up the CPU of every
process it started. A peer whose package is missing exits with `SKIPPED` (see `SKIP_EXIT`).

The peers come from the optional `bench` extra of operator/pyproject.toml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SKIP_EXIT = 3
"""Exit status of a runner whose peer is not installed; its stderr says which package."""

COMMAND = ["bash", "-c", "true"]


def hyperqueue(count: int, slots: int, marks: dict[str, float], workdir: Path) -> int:
    """HyperQueue's `LocalCluster`: the real server and one worker of SLOTS cores, in-process."""
    from hyperqueue import Job, LocalCluster
    from hyperqueue.cluster import WorkerConfig

    with LocalCluster(server_dir=str(workdir / "hq")) as cluster:
        cluster.start_worker(WorkerConfig(cores=slots))
        client = cluster.client()
        marks["ready"] = time.time()
        job = Job(default_workdir=str(workdir))
        for _ in range(count):
            # Task output goes to files, HyperQueue's default (as `hq submit` does).
            job.program(COMMAND)
        submitted = client.submit(job)
        marks["submitted"] = time.time()
        ok = client.wait_for_jobs([submitted], raise_on_error=False)
        marks["done"] = time.time()
    return 0 if ok else count  # HyperQueue tells whether the job failed, not how many tasks


def dask(count: int, slots: int, marks: dict[str, float], workdir: Path) -> int:
    """Dask distributed's `LocalCluster`: SLOTS single-thread worker processes, `subprocess.run`."""
    from distributed import Client, LocalCluster, wait

    with (
        LocalCluster(
            n_workers=slots,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            local_directory=str(workdir),
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(slots)
        marks["ready"] = time.time()
        futures = client.map(subprocess.run, [COMMAND] * count, pure=False)
        marks["submitted"] = time.time()
        wait(futures)
        marks["done"] = time.time()
        return sum(1 for f in futures if f.status != "finished" or f.result().returncode != 0)


def parsl(count: int, slots: int, marks: dict[str, float], workdir: Path) -> int:
    """Parsl's HighThroughputExecutor on the local machine: one block of SLOTS workers."""
    import parsl as parsl_module
    from parsl.app.app import bash_app
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    config = Config(
        executors=[
            HighThroughputExecutor(
                label="htex",
                max_workers_per_node=slots,
                provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1),
            )
        ],
        run_dir=str(workdir / "runinfo"),
        strategy="none",
    )

    @bash_app  # type: ignore[misc]
    def true_app() -> str:
        return "true"

    dfk = parsl_module.load(config)
    try:
        true_app().result()  # the block's workers are up once one task has run
        marks["ready"] = time.time()
        futures = [true_app() for _ in range(count)]
        marks["submitted"] = time.time()
        failed = 0
        for future in futures:
            if future.exception() is not None:
                failed += 1
        marks["done"] = time.time()
    finally:
        dfk.cleanup()
    return failed


def vahana(count: int, slots: int, marks: dict[str, float], workdir: Path) -> int:
    """The benchmark's harness: a SchedulerProcess with SLOTS local workers, submit() in-process."""
    import asyncio

    from bench import scenarios

    async def go() -> int:
        async with scenarios.scheduler_process(workers=slots, tasks_per_worker=1) as process:
            counter = scenarios.FinalCounter(count)
            process.scheduler.add_listener(counter)
            marks["ready"] = time.time()
            process.scheduler.submit(scenarios.submissions(count))
            marks["submitted"] = time.time()
            await asyncio.wait_for(counter.done.wait(), scenarios.FINAL_TIMEOUT)
            marks["done"] = time.time()
            return counter.not_completed

    return asyncio.run(go())


RUNNERS: dict[str, Callable[[int, int, dict[str, float], Path], int]] = {
    "hyperqueue": hyperqueue,
    "dask": dask,
    "parsl": parsl,
    "vahana": vahana,
}
PACKAGES = {"hyperqueue": "hyperqueue", "dask": "distributed", "parsl": "parsl", "vahana": "vahana"}


def main(argv: list[str]) -> int:
    name, count, slots, out = argv[0], int(argv[1]), int(argv[2]), Path(argv[3])
    marks: dict[str, Any] = {"started": time.time()}
    try:
        __import__(PACKAGES[name])
    except ImportError:
        print(f"SKIPPED: {PACKAGES[name]} is not installed (pip install -e 'operator[bench]')")
        return SKIP_EXIT
    with tempfile.TemporaryDirectory(prefix="vahana-bench-peer-") as tmp:
        os.chdir(tmp)  # output files some peers write land here
        marks["failed"] = RUNNERS[name](count, slots, marks, Path(tmp))
    marks["ended"] = time.time()
    out.write_text(json.dumps(marks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
