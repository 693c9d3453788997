"""Tables and one-line summaries for the terminal, from the wire records the commands get."""

from __future__ import annotations

import collections
import time
from collections.abc import Collection, Sequence

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from vahana import cli
from vahana.core import arrays, printable
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
    """The command's exit code; "-" when it did not run, or when it exited 0 and the attempt
    failed all the same (an input or output file could not be moved, say): the command is not
    what failed, the message says what did."""
    if not task.has_exit_code or (task.exit_code == 0 and task.status != pb.COMPLETED):
        return "-"
    return str(task.exit_code)


def ended_line(task: tasks_pb.TaskInfo) -> str:
    """A line for a task that has ended: `name: FAILED (exit 3): why`, its name as written."""
    line = f"{printable.printable(task.name or task.id)}: {status_name(task)}"
    code = exit_code(task)
    if code != "-":
        line += f" (exit {code})"
    why = last_line(task.message) if task.status != pb.COMPLETED else ""
    return f"{line}: {why}" if why else line


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


def last_line(text: str, width: int = 120) -> str:
    """The last line that is not blank, its end cut if it is long: a message starts with what
    happened ("command exited with code 3 …"), so its start is what must be read."""
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1].strip()
    return line if len(line) <= width else line[: width - 1] + "…"


def plain(text: str) -> Text:
    """Text from a task or worker, shown as written: no markup read from it, and control
    characters escaped (core/printable.py)."""
    return Text(printable.printable(text))


class _Note(Text):
    """Text that rich may narrow down to nothing: a table is never widened for it."""

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(0, self.cell_len)


def note(text: str) -> Text:
    """Free text of a table's `notes` column, as written: one line, cut with "…" to the width
    the other columns leave it."""
    return _Note(printable.printable(text), no_wrap=True, overflow="ellipsis")


def _table(
    columns: Sequence[str],
    cells: Sequence[Sequence[RenderableType]],
    *,
    notes: Collection[str] = (),
    title: str | None = None,
) -> Table:
    """Each row on one line, so that grep finds a task by its id: identifiers, names, phases
    and headers never wrap, and the `notes` columns (free text, `note` cells) give up
    their width first. A notes column that no row fills is left out."""
    kept = [
        i
        for i, name in enumerate(columns)
        if name not in notes or any(_filled(row[i]) for row in cells)
    ]
    # Two spaces between columns and none before the first, as in kubectl's tables: then 80
    # columns hold a task's id, name, phase, worker, exit code and age.
    shown = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        title=title,
        title_justify="left",
    )
    for i in kept:
        name = columns[i]
        # rich narrows only columns that may wrap; a note's own no_wrap keeps it on one line.
        header = note(name) if name in notes else Text(name, no_wrap=True)
        shown.add_column(header, no_wrap=name not in notes, overflow="ellipsis")
    for row in cells:
        shown.add_row(*(row[i] for i in kept))
    return shown


def _filled(cell: RenderableType) -> bool:
    return bool(cell.plain if isinstance(cell, Text) else cell)


def show(console: Console, renderable: RenderableType) -> None:
    """Prints a table (or a group holding one) with its identifiers whole: on a terminal too
    narrow for them, the rows are printed as wide as they need and the terminal folds them,
    as it does kubectl's, rather than rich cutting an id to `t-0b72bd…`."""
    width = console.width
    needed = Measurement.get(console, console.options.update_width(cli.PIPED_WIDTH), renderable)
    console.width = max(width, needed.minimum)
    try:
        console.print(renderable)
    finally:
        console.width = width


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


RESULT_COLUMNS = ("TASK", "STATUS", "EXIT", "DURATION", "WORKER", "OUTPUT", "MESSAGE")


def results_table(tasks: list[tasks_pb.TaskInfo], title: str = "Results") -> Table:
    groups: dict[str, list[tasks_pb.TaskInfo]] = {}
    for task in tasks:
        if task.array:
            groups.setdefault(task.array, []).append(task)
    cells: list[list[RenderableType]] = []
    shown: set[str] = set()
    for task in tasks:
        if task.array:
            if task.array not in shown:
                shown.add(task.array)
                cells.extend(_array_rows(task.array, groups[task.array]))
            continue
        cells.append(_result_row(plain(task.name or task.id), task))
    return _table(RESULT_COLUMNS, cells, notes=("OUTPUT", "MESSAGE"), title=title)


def _result_row(name: Text, task: tasks_pb.TaskInfo) -> list[RenderableType]:
    """The last line of the task's output, and for one that did not complete, why."""
    return [
        name,
        styled_status(task),
        exit_code(task),
        duration(task),
        plain(task.worker_id or "-"),
        note(last_line(task.output_tail)),
        note(last_line(task.message) if task.status != pb.COMPLETED else ""),
    ]


def rows(tasks: list[tasks_pb.TaskInfo]) -> int:
    """Rows of the result table: one per task, one per array (with its failed instances)."""
    arrays = {task.array for task in tasks if task.array}
    failed = sum(1 for task in tasks if task.array and task.status != pb.COMPLETED)
    return sum(1 for task in tasks if not task.array) + len(arrays) + min(failed, FAILED_ROWS)


FAILED_ROWS = 10
"""Failed instances of an array listed in the results, at most."""


def array_progress(instances: list[tasks_pb.TaskInfo]) -> tuple[str, list[tasks_pb.TaskInfo]]:
    """("COMPLETED 10,000/10,000", "FAILED 3 of 10,000 (9,812/10,000 finished)", …; the
    instances that ended without completing: failed, timed out, upstream failed, cancelled)."""
    ended = [t for t in instances if t.status in FINAL and t.status != pb.COMPLETED]
    done = sum(1 for t in instances if t.status in FINAL)
    total = len(instances)
    if ended:
        counts = collections.Counter(status_name(t) for t in ended)
        how = ", ".join(f"{name} {count:,}" for name, count in counts.most_common())
        unfinished = f" ({done:,}/{total:,} finished)" if done < total else ""
        return f"{how} of {total:,}{unfinished}", ended
    if done == total:
        return f"COMPLETED {done:,}/{total:,}", ended
    return f"RUNNING {done:,}/{total:,}", ended


def _array_rows(name: str, instances: list[tasks_pb.TaskInfo]) -> list[list[RenderableType]]:
    status, ended = array_progress(instances)
    style = "red" if ended else "green" if status.startswith("COMPLETED") else ""
    listed = arrays.listed([t.index for t in ended], FAILED_ROWS)
    found: list[list[RenderableType]] = [
        [
            plain(f"{name}[0-{len(instances) - 1}]"),
            Text(status, style=style),
            "-",
            "-",
            "-",
            note(""),
            note(f"did not complete: {listed}" if ended else ""),
        ]
    ]
    found.extend(_result_row(plain(f"  {task.name}"), task) for task in ended[:FAILED_ROWS])
    return found


def array_table(task: tasks_pb.TaskInfo) -> Table:
    """An array: its progress, its instances by phase, the indices that did not complete."""
    counts = task.array_status
    indices = list(counts.failed_indices)
    columns = ("ARRAY", "STATUS", "PROGRESS", "PENDING", "RUNNING", "COMPLETED", "FAILED")
    listed = arrays.listed(indices)
    cells: list[RenderableType] = [
        plain(task.name),
        styled_status(task),
        counts.progress,
        f"{counts.pending:,}",
        f"{counts.running:,}",
        f"{counts.completed:,}",
        f"{counts.failed:,}",
        f"{counts.cancelled:,}",
        note(listed or "-"),
    ]
    label = ended_indices(counts)
    return _table((*columns, "CANCELLED", label), [cells], notes=(label,))


def ended_indices(counts: tasks_pb.ArrayStatus) -> str:
    """What the array's `failed_indices` are: those of every instance that ended without
    completing, the cancelled ones too."""
    if not counts.cancelled:
        return "FAILED INDICES"
    return "CANCELLED INDICES" if not counts.failed else "FAILED OR CANCELLED"


def tasks_table(tasks: list[tasks_pb.TaskInfo]) -> Table:
    cells: list[list[RenderableType]] = [
        [
            plain(task.id),
            plain(task.name),
            styled_status(task),
            str(task.attempt),
            plain(task.worker_id or "-"),
            exit_code(task),
            age(task.created_at.ToNanoseconds() / 1e9),
            note(task.pending_reason or last_line(task.message)),
        ]
        for task in tasks
    ]
    columns = ("ID", "NAME", "STATUS", "ATTEMPT", "WORKER", "EXIT", "AGE", "REASON")
    return _table(columns, cells, notes=("REASON",))


def workers_table(workers: list[pb.WorkerInfo]) -> Table:
    cells: list[list[RenderableType]] = []
    for worker in workers:
        heartbeat = (
            age(worker.last_heartbeat.ToNanoseconds() / 1e9) + " ago"
            if worker.HasField("last_heartbeat")
            else "-"
        )
        cells.append(
            [
                plain(worker.worker_id),
                plain(worker.pool or "-"),
                pb.WorkerStatus.Name(worker.status),
                str(len(worker.active_task_ids)),
                str(worker.capabilities.max_concurrent_tasks),
                f"{worker.metrics.cpu_usage:.0f}",
                f"{worker.metrics.memory_usage:.0f}",
                heartbeat,
                age(worker.registered_at.ToNanoseconds() / 1e9),
                note(worker.status_message),
            ]
        )
    columns = ("ID", "POOL", "STATUS", "ACTIVE", "SLOTS", "CPU%", "MEM%", "LAST HEARTBEAT", "AGE")
    return _table((*columns, "REASON"), cells, notes=("REASON",))
