"""`vahana run -f FILE`: the embedded default — scheduler, local workers and the file's tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vahana.app import service
from vahana.app import settings as settings_module
from vahana.cli import render
from vahana.core import models
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.rpc import convert
from vahana.scheduling import scheduler as scheduler_module

if TYPE_CHECKING:
    from vahana.manifests import pools as pool_manifests


async def run_tasks(
    submissions: list[models.Submission] | Callable[[], list[models.Submission]],
    settings: settings_module.Settings,
    console: Console,
    pools: Sequence[pool_manifests.PoolManifest] = (),
) -> list[tasks_pb.TaskInfo]:
    """Runs the submissions to a final status on a fresh embedded scheduler; returns them.

    `submissions` may be a function that reads them: it is called once the scheduler has
    started its local workers, so that reading a large file and the workers' own start-up
    (Python and gRPC, in their processes) overlap instead of adding up. What it raises ends
    the run (the scheduler stopped) before anything is submitted."""
    process = service.SchedulerProcess(settings, pools=pools)
    await process.start()
    if process.dashboard is not None:
        console.print(f"dashboard on {process.dashboard.url}", markup=False)
    try:
        if callable(submissions):
            submissions = submissions()
        return await _watch(process, submissions, console)
    finally:
        with (
            console.status("stopping workers…") if console.is_terminal else contextlib.nullcontext()
        ):
            await process.stop()


PROGRESS_INTERVAL_S = 0.25
"""How often the progress bar is redrawn on a terminal, whatever the task rate."""
LINE_INTERVAL_S = 2.0
"""How often a progress line is printed when the output is not a terminal (large runs)."""


async def _watch(
    process: service.SchedulerProcess, submissions: list[models.Submission], console: Console
) -> list[tasks_pb.TaskInfo]:
    scheduler = process.scheduler
    finished: dict[str, models.TaskRecord] = {}
    running: set[str] = set()
    failed: list[str] = []
    all_done = asyncio.Event()
    ids: list[str] = []
    wanted: set[str] = set()
    # A line per task finished on a pipe or file only while that stays short; else counts.
    per_task_lines = not console.is_terminal and len(submissions) <= render.FULL_TABLE_UP_TO
    progress = Progress(
        TextColumn("[bold]tasks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[summary]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        auto_refresh=False,  # drawn by `tick` below at a bounded rate
        disable=not console.is_terminal,
    )
    bar = progress.add_task("tasks", total=len(submissions), summary="")

    def summary() -> str:
        return f"running {len(running)}  failed {len(failed)}"

    def on_change(task: models.TaskRecord) -> None:
        # Called for every change of every task: bookkeeping only, no drawing.
        if ids and task.id not in wanted:
            return
        if task.is_final and task.id not in finished:
            finished[task.id] = scheduler_module.snapshot(task)
            running.discard(task.id)
            if task.phase != models.TaskPhase.COMPLETED:
                failed.append(task.id)
            if per_task_lines or (
                not console.is_terminal and task.phase != models.TaskPhase.COMPLETED
            ):
                console.print(
                    f"{task.spec.name}: {task.phase.value}"
                    + (f" (exit {task.exit_code})" if task.exit_code is not None else "")
                )
        elif task.phase == models.TaskPhase.RUNNING:
            running.add(task.id)
        elif task.phase == models.TaskPhase.PENDING:
            running.discard(task.id)
        if wanted and len(finished) >= len(wanted):
            all_done.set()

    async def tick() -> None:
        interval = PROGRESS_INTERVAL_S if console.is_terminal else LINE_INTERVAL_S
        while not all_done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_done.wait(), interval)
            if console.is_terminal:
                progress.update(bar, completed=len(finished), summary=summary())
                progress.refresh()
            elif not per_task_lines and not all_done.is_set():
                console.print(f"{len(finished):,} of {len(wanted):,} final; {summary()}")

    scheduler.add_listener(on_change)
    try:
        with progress:
            ids.extend(scheduler.submit(submissions))
            wanted.update(ids)
            for task_id in ids:  # tasks already final from an earlier run of the same state dir
                on_change(scheduler.get_task(task_id))
            if not console.is_terminal:
                console.print(
                    f"submitted {len(ids)} task(s) to "
                    f"{process.settings.local_workers} local worker(s)"
                )
            await tick()
            progress.update(bar, completed=len(finished), summary=summary())
    finally:
        scheduler.remove_listener(on_change)
    return [convert.task_info(finished[task_id]) for task_id in ids]
