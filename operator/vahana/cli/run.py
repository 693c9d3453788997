"""`vahana run -f FILE`: the embedded default — scheduler, local workers and the file's tasks."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from rich.console import Console

from vahana import cli
from vahana.app import keeper as keeper_module
from vahana.app import service
from vahana.app import settings as settings_module
from vahana.core import models
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.rpc import convert
from vahana.scheduling import scheduler as scheduler_module

if TYPE_CHECKING:
    from vahana.manifests import pools as pool_manifests

T = TypeVar("T")


async def run_tasks(
    submissions: list[models.Submission] | Callable[[], list[models.Submission]],
    settings: settings_module.Settings,
    console: Console,
    pools: Sequence[pool_manifests.PoolManifest] = (),
) -> list[tasks_pb.TaskInfo]:
    """Runs the submissions to a final status on a fresh embedded scheduler; returns them.

    `submissions` may be a function that reads them: it is called on a thread as the scheduler
    starts (its start waits for the zygote to fork the local workers), so that reading a
    large file and the workers' own start-up overlap instead of adding up, and the workers'
    registrations are answered meanwhile. What it raises ends the run (the scheduler stopped)
    before anything is submitted."""
    process = service.SchedulerProcess(settings, pools=pools)
    # Counted before the workers start: they may have run them by the time the file is read.
    earlier = process.scheduler.unfinished_count  # recovered from a --state-dir given again
    if earlier:
        console.print(
            f"the state dir holds {earlier:,} unfinished task(s) of an earlier run: they run "
            "too, beside this file's",
            markup=False,
        )
    if callable(submissions):
        # Read on a thread from now: it runs while this one waits for the zygote to fork the
        # workers, and while the workers start it answers their registrations.
        reading = _on_a_thread(submissions)
    else:
        reading = asyncio.get_running_loop().create_future()
        reading.set_result(submissions)
    try:
        await process.start()
    except BaseException:
        if reading.done() and not reading.cancelled():
            reading.exception()  # a failed read is not news now: the start's error is
        reading.cancel()
        # Stopped as `server` stops it: left running (its gRPC server, its workers) when the
        # event loop closed, the process crashed once in 1,384 tests (SIGSEGV) on its way out.
        await process.stop()
        raise
    if process.dashboard is not None:
        console.print(f"dashboard on {process.dashboard.url}", markup=False)
    if process.pool is None and process.pools is None:  # --workers 0: nothing runs them yet
        console.print(
            f"no local workers: the tasks wait for a worker to register at {process.address}, "
            f"e.g. `vahana-worker --server-address={process.address} --worker-id=w1`",
            markup=False,
        )
    ctrl_c = _CtrlC(process)
    try:
        return await _watch(process, await reading, console)
    except asyncio.CancelledError:
        if ctrl_c.pressed:
            raise KeyboardInterrupt from None
        raise
    finally:
        ctrl_c.stopping()
        with (
            console.status("stopping workers…") if console.is_terminal else contextlib.nullcontext()
        ):
            await process.stop()
        ctrl_c.close()


def _on_a_thread(work: Callable[[], T]) -> asyncio.Future[T]:
    """`work()` on a daemon thread of its own, started now: unlike the loop's default
    executor, a run interrupted meanwhile does not wait for it to finish before it exits."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # not cancelled meanwhile
            outcome()

    def run() -> None:
        try:
            result = work()
        except BaseException as error:  # noqa: BLE001 - raised again in the awaiting task
            done = functools.partial(future.set_exception, error)
        else:
            done = functools.partial(future.set_result, result)
        with contextlib.suppress(RuntimeError):  # the run ended meanwhile: its loop is closed
            loop.call_soon_threadsafe(settle, done)

    threading.Thread(target=run, name="read-tasks", daemon=True).start()
    return future


class _CtrlC:
    """Ctrl-C during a run: the first cancels it (`_watch` then cancels its unfinished tasks
    and says what became of them); the second, or one while the workers are being stopped,
    ends the process at once."""

    def __init__(self, process: service.SchedulerProcess) -> None:
        self.pressed = 0
        self._process = process
        self._run = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        try:
            self._loop.add_signal_handler(signal.SIGINT, self._heard)
            self._listening = True
        except (RuntimeError, ValueError):  # not the main thread: asyncio.run's own handling
            self._listening = False

    def _heard(self) -> None:
        self.pressed += 1
        if self.pressed == 1 and self._run is not None:
            self._run.cancel()
        else:
            _quit_now(self._process)

    def stopping(self) -> None:
        """From now on a Ctrl-C ends the process: there is no run left to cancel."""
        self._run = None

    def close(self) -> None:
        if self._listening:
            self._loop.remove_signal_handler(signal.SIGINT)


PROGRESS_INTERVAL_S = 0.25
"""How often the progress bar is redrawn on a terminal, whatever the task rate."""
LINE_INTERVAL_S = 2.0
"""How often a progress line is printed when the output is not a terminal (large runs)."""
INTERRUPTED_WAIT_S = 15.0
"""After Ctrl-C, how long the run waits for its cancelled tasks to end (their processes get
SIGTERM, then SIGKILL after the workers' kill grace) before it stops the workers anyway."""


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
    per_task_lines = not console.is_terminal and len(submissions) <= cli.FULL_TABLE_UP_TO

    def summary() -> str:
        text = f"running {len(running)}  failed {len(failed)}"
        waiting = why_waiting()
        return f"{text}  waiting: {waiting}" if waiting else text

    def why_waiting() -> str:
        """Why the tasks wait, while none runs: a task no worker can run waits forever."""
        if running or not wanted or len(finished) >= len(wanted):
            return ""
        for task_id in ids:
            if task_id not in finished:
                task = scheduler.live_task(task_id)
                if task is not None and task.phase == models.TaskPhase.PENDING:
                    return scheduler.pending_reason(task)
        return ""

    def on_change(task: models.TaskRecord) -> None:
        # Called for every change of every task: bookkeeping only, no drawing.
        if task.id not in wanted:
            return
        if task.is_final and task.id not in finished:
            finished[task.id] = scheduler_module.snapshot(task)
            running.discard(task.id)
            if task.phase != models.TaskPhase.COMPLETED:
                failed.append(task.id)
            if per_task_lines or (
                not console.is_terminal and task.phase != models.TaskPhase.COMPLETED
            ):
                console.print(render.ended_line(convert.task_info(finished[task.id])), markup=False)
        elif task.phase == models.TaskPhase.RUNNING:
            running.add(task.id)
        elif task.phase == models.TaskPhase.PENDING:
            running.discard(task.id)
        if wanted and len(finished) >= len(wanted):
            all_done.set()

    async def tick() -> None:
        interval = PROGRESS_INTERVAL_S if console.is_terminal else LINE_INTERVAL_S
        told = ""
        while not all_done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_done.wait(), interval)
            if (cannot := _why_no_worker_can_start(process)) is not None:
                # Cancelled, as by Ctrl-C: a state dir kept with --state-dir holds no task
                # that a later run would start.
                for task_id in ids:
                    if task_id not in finished:
                        scheduler.cancel(task_id, "the local workers cannot start")
                raise keeper_module.WorkersCannotStart(f"the local workers cannot start: {cannot}")
            if console.is_terminal:
                progress.update(bar, completed=len(finished), summary=summary())
                progress.refresh()
            elif not per_task_lines and not all_done.is_set():
                console.print(f"{len(finished):,} of {len(wanted):,} final; {summary()}")
            elif per_task_lines and (waiting := why_waiting()) != told:
                told = waiting  # said once per change: a short run prints no count lines
                if waiting:
                    console.print(f"waiting: {waiting}", markup=False)

    # Submitted before the display is loaded (as `main` loads its readers and tables once the
    # workers are started): the first tasks start meanwhile. The listener comes after: what
    # `submit` publishes besides this run's new tasks (an earlier run's tasks of the same state
    # dir that ended meanwhile) is not this run's, and where each of this run's tasks is
    # (queued, or final from an earlier run) is caught up below, with no await in between.
    ids.extend(scheduler.submit(submissions))
    wanted.update(ids)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from vahana.cli import render

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
    scheduler.add_listener(on_change)
    try:
        with progress:
            for task_id in ids:
                on_change(scheduler.get_task(task_id))
            if not console.is_terminal:
                where = (
                    "the pools of --pool-file"
                    if process.pools is not None
                    else f"{process.settings.local_workers} local worker(s)"
                )
                console.print(f"submitted {len(ids)} task(s) to {where}")
            await tick()
            progress.update(bar, completed=len(finished), summary=summary())
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels the run
        await _interrupted(process, ids, finished, all_done, console)
        raise
    finally:
        scheduler.remove_listener(on_change)
    # What the results table and summary show, a record at a time in place of its snapshot:
    # for 100,000 tasks, both at once and each with its spec cost a third of the run's memory.
    return [convert.task_info(finished.pop(task_id), with_spec=False) for task_id in ids]


def _why_no_worker_can_start(process: service.SchedulerProcess) -> str | None:
    """Why the tasks would wait forever, if they would: the local workers end as they start
    and none is left registered; else None."""
    keeper = process.keeper
    if keeper is None or keeper.cannot_start is None:
        return None
    live = (models.WorkerState.AVAILABLE, models.WorkerState.BUSY, models.WorkerState.DRAINING)
    if any(w.state in live for w in process.scheduler.list_workers()):
        return None
    return keeper.cannot_start


async def _interrupted(
    process: service.SchedulerProcess,
    ids: list[str],
    finished: dict[str, models.TaskRecord],
    all_done: asyncio.Event,
    console: Console,
) -> None:
    """Cancels what has not finished (first what workers hold: their processes are stopped at
    once) and waits a while for it to end, so that the workers then stop at once and a
    state dir kept with --state-dir holds no task that would run later; says what became of
    the tasks. A second Ctrl-C ends the process at once: its workers are killed (their
    guardians end their tasks' processes)."""
    scheduler = process.scheduler
    unfinished = [task_id for task_id in ids if task_id not in finished]
    # Handed to a worker: RUNNING, or ASSIGNED (its process may have started before the
    # worker's RUNNING report arrived).
    held = {
        task_id
        for task_id in unfinished
        if (task := scheduler.live_task(task_id)) is not None and task.phase in ON_A_WORKER
    }
    console.print(
        f"interrupted: cancelling {len(unfinished)} unfinished task(s), {len(held)} of them "
        "on workers (Ctrl-C again to quit at once)",
        markup=False,
    )
    for task_id in sorted(unfinished, key=lambda task_id: task_id not in held):
        scheduler.cancel(task_id, "the run was interrupted (Ctrl-C)")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_done.wait(), INTERRUPTED_WAIT_S)
    completed = sum(1 for t in finished.values() if t.phase == models.TaskPhase.COMPLETED)
    console.print(
        f"{completed} of {len(ids)} task(s) completed; cancelled: {len(held)} on workers, "
        f"{len(unfinished) - len(held)} still queued",
        markup=False,
    )


ON_A_WORKER = frozenset({models.TaskPhase.ASSIGNED, models.TaskPhase.RUNNING})


def _quit_now(process: service.SchedulerProcess) -> None:
    if process.pool is not None:
        process.pool.kill_workers()
    os._exit(cli.INTERRUPTED)  # the second Ctrl-C
