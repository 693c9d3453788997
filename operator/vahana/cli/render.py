"""Tables and one-line summaries for the terminal, from the wire records the commands get."""

from __future__ import annotations

import collections
import time

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from vahana.core import printable
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb

FINAL = frozenset({pb.COMPLETED, pb.FAILED, pb.CANCELLED, pb.TIMED_OUT, pb.UPSTREAM_FAILED})

_STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "TIMED_OUT": "red",
    "UPSTREAM_FAILED": "red",
    "CANCELLED": "yellow",
    "RUNNING": "cyan",
    "ASSIGNED": "cyan",
    "PENDING": "dim",
}


def status_name(task: tasks_pb.TaskInfo) -> str:
    return str(pb.TaskStatus.Name(task.status))


def styled_status(task: tasks_pb.TaskInfo) -> str:
    name = status_name(task)
    return f"[{_STATUS_STYLE.get(name, '')}]{name}[/]"


def exit_code(task: tasks_pb.TaskInfo) -> str:
    return str(task.exit_code) if task.has_exit_code else "-"


def duration(task: tasks_pb.TaskInfo) -> str:
    if task.HasField("duration"):
        return human_seconds(task.duration.ToNanoseconds() / 1e9)
    if task.HasField("started_at"):
        return human_seconds(time.time() - task.started_at.ToNanoseconds() / 1e9)
    return "-"


def human_seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def age(stamp_seconds: float) -> str:
    return human_seconds(max(0.0, time.time() - stamp_seconds)) if stamp_seconds else "-"


def last_line(text: str, width: int = 60) -> str:
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1].strip()
    return line if len(line) <= width else "…" + line[-(width - 1) :]


def plain(text: str) -> Text:
    """Text from a task or worker, shown as written: no markup read from it, and control
    characters escaped (core/printable.py)."""
    return Text(printable.printable(text))


FULL_TABLE_UP_TO = 50
"""Runs of this many tasks or fewer get the full result table; larger ones a summary."""
SLOWEST = 5
"""Completed tasks the summary lists, slowest first."""


def seconds(task: tasks_pb.TaskInfo) -> float:
    return task.duration.ToNanoseconds() / 1e9 if task.HasField("duration") else 0.0


def phase_counts(tasks: list[tasks_pb.TaskInfo]) -> str:
    """`COMPLETED 1,998  FAILED 2`: every phase present, most frequent first."""
    counts = collections.Counter(status_name(task) for task in tasks)
    return "  ".join(
        f"[{_STATUS_STYLE.get(name, '')}]{name}[/] {count:,}"
        for name, count in counts.most_common()
    )


def run_summary(tasks: list[tasks_pb.TaskInfo], slowest: int = SLOWEST) -> Group:
    """A large run in a few lines: counts per phase, every task that did not complete, then the
    slowest ones; `--all` prints every task."""
    failed = [task for task in tasks if task.status != pb.COMPLETED]
    completed = [task for task in tasks if task.status == pb.COMPLETED]
    slow = sorted(completed, key=seconds, reverse=True)[:slowest]
    shown = (f"the {len(failed):,} that did not complete, then " if failed else "") + (
        f"the {len(slow)} slowest"
    )
    header = f"Results of {len(tasks):,} tasks: {phase_counts(tasks)} ({shown}; --all: every task)"
    return Group(Text.from_markup(header), results_table(failed + slow, title=""))


def results_table(tasks: list[tasks_pb.TaskInfo], title: str = "Results") -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left")
    for column in ("TASK", "STATUS", "EXIT", "DURATION", "WORKER", "OUTPUT"):
        table.add_column(column, overflow="fold")
    groups: dict[str, list[tasks_pb.TaskInfo]] = {}
    for task in tasks:
        if task.array:
            groups.setdefault(task.array, []).append(task)
    shown: set[str] = set()
    for task in tasks:
        if task.array:
            if task.array not in shown:
                shown.add(task.array)
                _array_rows(table, task.array, groups[task.array])
            continue
        tail = last_line(task.output_tail) or last_line(task.message)
        table.add_row(
            plain(task.name or task.id),
            styled_status(task),
            exit_code(task),
            duration(task),
            plain(task.worker_id or "-"),
            plain(tail),
        )
    return table


def rows(tasks: list[tasks_pb.TaskInfo]) -> int:
    """Rows of the result table: one per task, one per array (with its failed instances)."""
    arrays = {task.array for task in tasks if task.array}
    failed = sum(1 for task in tasks if task.array and task.status != pb.COMPLETED)
    return sum(1 for task in tasks if not task.array) + len(arrays) + min(failed, FAILED_ROWS)


FAILED_ROWS = 10
"""Failed instances of an array listed in the results, at most."""


def array_progress(instances: list[tasks_pb.TaskInfo]) -> tuple[str, list[tasks_pb.TaskInfo]]:
    """("COMPLETED 10,000/10,000" or "FAILED 3 of 10,000 …", the failed instances)."""
    failed = [t for t in instances if t.status in FINAL and t.status != pb.COMPLETED]
    done = sum(1 for t in instances if t.status in FINAL)
    total = len(instances)
    if failed:
        return f"FAILED {len(failed):,} of {total:,} ({done:,}/{total:,} finished)", failed
    if done == total:
        return f"COMPLETED {done:,}/{total:,}", failed
    return f"RUNNING {done:,}/{total:,}", failed


def _array_rows(table: Table, name: str, instances: list[tasks_pb.TaskInfo]) -> None:
    status, failed = array_progress(instances)
    style = "red" if failed else "green" if status.startswith("COMPLETED") else ""
    table.add_row(
        f"{name}[0-{len(instances) - 1}]",
        f"[{style}]{status}[/]" if style else status,
        "-",
        "-",
        "-",
        f"failed indices: {', '.join(str(t.index) for t in failed[:FAILED_ROWS])}"
        + (" …" if len(failed) > FAILED_ROWS else "")
        if failed
        else "",
    )
    for task in failed[:FAILED_ROWS]:
        tail = last_line(task.output_tail) or last_line(task.message)
        table.add_row(
            f"  {task.name}",
            styled_status(task),
            exit_code(task),
            duration(task),
            task.worker_id or "-",
            tail,
        )


def array_table(task: tasks_pb.TaskInfo) -> Table:
    """An array: its progress, its instances by phase, the failed indices."""
    counts = task.array_status
    table = Table(box=box.SIMPLE_HEAD)
    columns = ("ARRAY", "STATUS", "PROGRESS", "PENDING", "RUNNING", "COMPLETED", "FAILED")
    for column in (*columns, "CANCELLED", "FAILED INDICES"):
        table.add_column(column, overflow="fold")
    failed = list(counts.failed_indices)
    table.add_row(
        task.name,
        styled_status(task),
        counts.progress,
        f"{counts.pending:,}",
        f"{counts.running:,}",
        f"{counts.completed:,}",
        f"{counts.failed:,}",
        f"{counts.cancelled:,}",
        ", ".join(map(str, failed[:20])) + (" …" if len(failed) > 20 else "") or "-",
    )
    return table


def tasks_table(tasks: list[tasks_pb.TaskInfo]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("ID", "NAME", "STATUS", "ATTEMPT", "WORKER", "EXIT", "AGE", "REASON"):
        table.add_column(column, overflow="fold")
    for task in tasks:
        reason = task.pending_reason or last_line(task.message)
        table.add_row(
            plain(task.id),
            plain(task.name),
            styled_status(task),
            str(task.attempt),
            plain(task.worker_id or "-"),
            exit_code(task),
            age(task.created_at.ToNanoseconds() / 1e9),
            plain(reason),
        )
    return table


def workers_table(workers: list[pb.WorkerInfo]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    for column in (
        "ID",
        "POOL",
        "STATUS",
        "ACTIVE",
        "SLOTS",
        "CPU%",
        "MEM%",
        "LAST HEARTBEAT",
        "AGE",
    ):
        table.add_column(column, overflow="fold")
    reasons = any(worker.status_message for worker in workers)
    if reasons:
        table.add_column("REASON", overflow="fold")
    for worker in workers:
        heartbeat = (
            age(worker.last_heartbeat.ToNanoseconds() / 1e9) + " ago"
            if worker.HasField("last_heartbeat")
            else "-"
        )
        table.add_row(
            plain(worker.worker_id),
            plain(worker.pool or "-"),
            pb.WorkerStatus.Name(worker.status),
            str(len(worker.active_task_ids)),
            str(worker.capabilities.max_concurrent_tasks),
            f"{worker.metrics.cpu_usage:.0f}",
            f"{worker.metrics.memory_usage:.0f}",
            heartbeat,
            age(worker.registered_at.ToNanoseconds() / 1e9),
            *([plain(worker.status_message or "-")] if reasons else []),
        )
    return table
