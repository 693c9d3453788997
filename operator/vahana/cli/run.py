"""`vahana run -f FILE`: the embedded default — scheduler, local workers and the file's tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vahana.app import service
from vahana.app import settings as settings_module
from vahana.core import models
from vahana.manifests import pools as pool_manifests
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.rpc import convert
from vahana.scheduling import scheduler as scheduler_module


async def run_tasks(
    submissions: list[models.Submission],
    settings: settings_module.Settings,
    console: Console,
    pools: Sequence[pool_manifests.PoolManifest] = (),
) -> list[tasks_pb.TaskInfo]:
    """Runs the submissions to a final status on a fresh embedded scheduler; returns them."""
    process = service.SchedulerProcess(settings, pools=pools)
    await process.start()
    if process.dashboard is not None:
        console.print(f"dashboard on {process.dashboard.url}", markup=False)
    try:
        return await _watch(process, submissions, console)
    finally:
        with (
            console.status("stopping workers…") if console.is_terminal else contextlib.nullcontext()
        ):
            await process.stop()


async def _watch(
    process: service.SchedulerProcess, submissions: list[models.Submission], console: Console
) -> list[tasks_pb.TaskInfo]:
    scheduler = process.scheduler
    finished: dict[str, models.TaskRecord] = {}
    running: set[str] = set()
    all_done = asyncio.Event()
    ids: list[str] = []
    progress = Progress(
        TextColumn("[bold]tasks"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[summary]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
    bar = progress.add_task("tasks", total=len(submissions), summary="")

    def summary() -> str:
        failed = sum(1 for t in finished.values() if t.phase != models.TaskPhase.COMPLETED)
        return f"running {len(running)}  failed {failed}"

    def on_change(task: models.TaskRecord) -> None:
        if ids and task.id not in wanted:
            return
        if task.is_final and task.id not in finished:
            finished[task.id] = scheduler_module.snapshot(task)
            running.discard(task.id)
            if not console.is_terminal:
                console.print(
                    f"{task.spec.name}: {task.phase.value}"
                    + (f" (exit {task.exit_code})" if task.exit_code is not None else "")
                )
        elif task.phase == models.TaskPhase.RUNNING:
            running.add(task.id)
        elif task.phase == models.TaskPhase.PENDING:
            running.discard(task.id)
        progress.update(bar, completed=len(finished), summary=summary())
        if wanted and len(finished) >= len(wanted):
            all_done.set()

    wanted: set[str] = set()
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
            await all_done.wait()
    finally:
        scheduler.remove_listener(on_change)
    return [convert.task_info(finished[task_id]) for task_id in ids]
