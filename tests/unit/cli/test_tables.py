"""The tables of `get` and `run`: a row per line whatever the width, ids and phases whole, free
text cut at its end; exit codes only of commands that failed; what an array's indices are."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from vahana import cli
from vahana.cli import main, render
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb

RETRIES = " (task retries exhausted (0 of 0 used))"


def shown(renderable: object, width: int) -> list[str]:
    """The lines `render.show` prints on a terminal `width` columns wide."""
    out = io.StringIO()
    render.show(Console(file=out, width=width, force_terminal=True, color_system=None), renderable)
    return out.getvalue().splitlines()


def task(name: str, status: int, **fields: object) -> tasks_pb.TaskInfo:
    return tasks_pb.TaskInfo(id=f"t-{name[:4]:0>4}5ed7423f", name=name, status=status, **fields)


def row_of(lines: list[str], start: str) -> str:
    return next(line for line in lines if line.startswith(start))


@pytest.mark.parametrize("width", [80, 40])
def test_ids_names_phases_and_headers_stay_whole_on_a_narrow_terminal(width: int) -> None:
    tasks = [
        task("preprocess-the-inputs", pb.UPSTREAM_FAILED, message="upstream failed: fetch"),
        task("fetch", pb.PENDING, pending_reason="all 1 matching worker(s) are busy"),
    ]
    lines = shown(render.tasks_table(tasks), width)
    assert lines[0].split()[:7] == ["ID", "NAME", "STATUS", "ATTEMPT", "WORKER", "EXIT", "AGE"]
    for info in tasks:
        assert row_of(lines, info.id).split()[:3] == [info.id, info.name, render.status_name(info)]
    assert len(lines) == 2 + len(tasks)  # a line each: nothing wrapped


def test_free_text_is_cut_at_its_end_where_the_terminal_is_narrow() -> None:
    message = "command exited with code 3" + RETRIES
    lines = shown(render.results_table([task("a", pb.FAILED, message=message)]), 80)
    row = row_of(lines, "a ")
    assert "command exited" in row and row.rstrip().endswith("…") and len(row) <= 80, row
    assert render.last_line("x" * 200, width=10) == "x" * 9 + "…"


def test_a_column_no_row_fills_is_left_out() -> None:
    lines = shown(render.tasks_table([task("done", pb.COMPLETED)]), 200)
    assert "REASON" not in lines[0]
    assert "REASON" in shown(render.tasks_table([task("f", pb.FAILED, message="why")]), 200)[0]
    results = shown(render.results_table([task("quiet", pb.COMPLETED)]), 200)
    assert results[1].split() == ["TASK", "STATUS", "EXIT", "DURATION", "WORKER"]


def test_piped_output_is_not_cut_to_the_columns_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert not main.stdout_console().is_terminal  # pytest's captured stdout
    assert main.stdout_console().width == cli.PIPED_WIDTH


def test_a_task_that_failed_moving_its_files_shows_why_and_no_exit_code() -> None:
    missing = "output 'out.txt': not found in the sandbox (the task did not write it)"
    staging = task("copy", pb.FAILED, exit_code=0, has_exit_code=True, message=missing + RETRIES)
    command = task("cmd", pb.FAILED, exit_code=3, has_exit_code=True, message="command exited")
    done = task("ok", pb.COMPLETED, exit_code=0, has_exit_code=True)
    assert [render.exit_code(t) for t in (staging, command, done)] == ["-", "3", "0"]
    assert render.ended_line(staging) == f"copy: FAILED: {missing}{RETRIES}"
    assert render.ended_line(command) == "cmd: FAILED (exit 3): command exited"
    assert render.ended_line(done) == "ok: COMPLETED (exit 0)"
    row = row_of(shown(render.results_table([staging]), 300), "copy ")
    assert row.split()[1:3] == ["FAILED", "-"] and missing in row, row


@pytest.mark.parametrize(
    ("failed", "cancelled", "label"),
    [
        (2, 0, "FAILED INDICES"),
        (0, 6, "CANCELLED INDICES"),
        (1, 5, "FAILED OR CANCELLED"),
    ],
)
def test_an_array_names_what_its_listed_indices_are(
    failed: int, cancelled: int, label: str
) -> None:
    counts = tasks_pb.ArrayStatus(
        total=6,
        failed=failed,
        cancelled=cancelled,
        completed=6 - failed - cancelled,
        failed_indices=range(failed + cancelled),
        progress="6/6",
    )
    array = tasks_pb.TaskInfo(name="sweep", status=pb.CANCELLED, array_status=counts)
    header, _, row = shown(render.array_table(array), 200)[:3]
    assert header.endswith(label), header
    assert row.split()[-(failed + cancelled) :][0] == "0,", row


def test_the_result_rows_of_a_cancelled_array_do_not_call_it_failed() -> None:
    instances = [
        task(f"sweep[{i}]", pb.CANCELLED, array="sweep", index=i, message="cancelled")
        for i in range(6)
    ]
    status, ended = render.array_progress(instances)
    assert status == "CANCELLED 6 of 6" and len(ended) == 6
    row = row_of(shown(render.results_table(instances), 200), "sweep[0-5]")
    assert "FAILED" not in row and "did not complete: 0, 1, 2, 3, 4, 5" in row, row


def test_get_without_what_to_show_names_what_can_be_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main.main(["get"]) == 2
    error = capsys.readouterr().err
    assert "tasks, task NAME" in error and "workers" in error, error


def test_certs_out_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main.main(["certs", "--help"])
    usage = capsys.readouterr().out
    assert "--out DIR directory to write the files into" in " ".join(usage.split()), usage
