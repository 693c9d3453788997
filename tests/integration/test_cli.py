"""The `vahana` command as a user runs it: `run` (the embedded default) and the client commands."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.unit.cli.test_startup_imports import NOT_FOR_RUN, under
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
HEADER = "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: a}\n"
EXAMPLES = ROOT / "deploy" / "examples"
ENTRY_POINT = "from vahana.cli.entry import main; main()"
"""What the installed `vahana` script runs (operator/pyproject.toml)."""


def vahana(
    *args: str,
    timeout: float = 120,
    stdin: str | None = None,
    python: tuple[str, ...] = (),
    columns: int = 200,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The command, through the entry point the `vahana` script calls, in an environment of its
    own (and this one's PYTHONPATH, so it runs the code under test) and a working directory of
    its own (a run collects outputs in ./outputs); `python`: the interpreter's options;
    `columns`: $COLUMNS; `env`: further variables."""
    path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    with tempfile.TemporaryDirectory(prefix="vahana-cli-") as cwd:
        return subprocess.run(
            [sys.executable, *python, "-c", ENTRY_POINT, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            cwd=cwd,
            env={
                "COLUMNS": str(columns),
                "PATH": "/usr/bin:/bin",
                "HOME": str(Path.home()),
                **path,
                **(env or {}),
            },
        )


def test_the_installed_script_runs_the_entry_point_these_tests_run() -> None:
    scripts = tomllib.loads((ROOT / "operator" / "pyproject.toml").read_text())["project"]
    assert scripts["scripts"]["vahana"] == "vahana.cli.entry:main"


def test_run_executes_the_examples_to_completed_and_prints_a_result_table() -> None:
    result = vahana("run", "-f", str(EXAMPLES / "hello.yaml"), "--workers=2")
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout[result.stdout.index("Results") :]
    for name in ("hello", "count", "greet-env", "copy-hostname", "small-resources"):
        row = next(line for line in table.splitlines() if line.strip().startswith(name))
        assert "COMPLETED" in row, row
    assert "Hello, Vahana" in table
    assert "all 5 task(s) completed" in result.stdout


def test_a_large_run_prints_a_summary_and_the_full_table_only_with_all(tmp_path: Path) -> None:
    many = tmp_path / "many.yaml"
    many.write_text(
        "---\n".join(
            f"apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {{name: t{i}}}\n"
            f"spec: {{command: '{'exit 4' if i == 7 else 'true'}'}}\n"
            for i in range(60)
        )
    )
    summary = vahana("run", "-f", str(many), "--workers=2")
    assert summary.returncode == 1, summary.stdout + summary.stderr
    assert "Results of 60 tasks: COMPLETED 59  FAILED 1" in summary.stdout
    table = summary.stdout[summary.stdout.index("Results") :]
    rows = [line.split() for line in table.splitlines() if line.strip()[:1] == "t"]
    assert rows[0][:3] == ["t7", "FAILED", "4"] and len(rows) == 1 + 5, rows
    assert "t7: FAILED (exit 4)" in summary.stdout  # failures as they happen; no line per task
    assert "t3: COMPLETED" not in summary.stdout
    every = vahana("run", "-f", str(many), "--workers=2", "--all")
    table = every.stdout[every.stdout.index("Results") :]
    assert {line.split()[0] for line in table.splitlines() if line.strip()[:1] == "t"} == {
        f"t{i}" for i in range(60)
    }


def test_run_starts_its_workers_before_it_reads_the_file(tmp_path: Path) -> None:
    """The file (here stdin, held open) is read while the local workers start: a worker
    process is up before the first byte of the file is there."""
    path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    state = tmp_path / "state"
    command = [sys.executable, "-c", ENTRY_POINT, "run", "-f", "-", "--workers=1"]
    with subprocess.Popen(
        [*command, f"--state-dir={state}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **path},
    ) as run:
        assert run.stdin is not None and run.stdout is not None
        try:
            wait_until(
                lambda: any((state / "logs").glob("*.log")) or run.poll() is not None,
                timeout=60,
                message="a worker started while the file is still unread",
            )
            assert run.poll() is None, run.stdout.read()
            run.stdin.write(
                "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: late}\n"
                "spec: {command: echo read late}\n"
            )
            run.stdin.close()
            output = run.stdout.read()
            assert run.wait(timeout=60) == 0, output
        finally:
            if run.poll() is None:
                run.kill()
    assert "all 1 task(s) completed" in output, output


def test_run_stops_with_the_reason_when_its_local_workers_cannot_start() -> None:
    # A setting every worker refuses: each ends at once, saying why in its log.
    done = vahana(
        "run",
        "-f",
        str(EXAMPLES / "hello.yaml"),
        "--workers=1",
        env={"VAHANA_WORKER_CGROUPS": "sometimes"},
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: the local workers cannot start: 3 local workers in a row" in done.stderr
    assert "cgroups: must be auto or off" in done.stderr  # the worker's own words
    # The log it names goes with the run's temporary state dir: the user is told how to keep it.
    assert "give --state-dir DIR to keep them" in done.stderr


def test_a_run_that_keeps_its_state_dir_names_a_worker_log_that_is_there(tmp_path: Path) -> None:
    done = vahana(
        "run",
        "-f",
        str(EXAMPLES / "hello.yaml"),
        "--workers=1",
        f"--state-dir={tmp_path}",
        env={"VAHANA_WORKER_CGROUPS": "sometimes"},
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "--state-dir DIR" not in done.stderr
    [log] = re.findall(r"its log \((\S+)\) ends", done.stderr)[:1]
    assert Path(log).is_file() and "cgroups: must be auto or off" in Path(log).read_text()


def test_run_serves_the_dashboard_only_when_asked_and_prints_its_address() -> None:
    hello = str(EXAMPLES / "hello.yaml")
    asked = vahana("run", "-f", hello, "--workers=1", "--ui-port=0")
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert re.search(r"dashboard on http://127\.0\.0\.1:\d+/", asked.stdout), asked.stdout
    plain = vahana("run", "-f", hello, "--workers=1")
    assert "dashboard" not in plain.stdout


@pytest.mark.parametrize(
    ("flag", "setting", "other_ports"),
    [
        ("--metrics-port", "metrics.port", ("--no-ui",)),
        ("--ui-port", "ui.port", ("--metrics-port=0",)),
    ],
)
@pytest.mark.parametrize("command", ["run", "server"])
def test_a_busy_port_ends_in_one_error_line_naming_the_setting(
    tmp_path: Path, command: str, flag: str, setting: str, other_ports: tuple[str, ...]
) -> None:
    started = (
        ("run", "-f", str(EXAMPLES / "hello.yaml"), "--workers=1")
        if command == "run"
        else ("server", f"--state-dir={tmp_path}", "--port=0", "--workers=0", *other_ports)
    )
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = vahana(*started, f"{flag}={port}", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: {setting}: cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_run_loads_only_what_it_was_asked_for() -> None:
    """No pool file, metrics or dashboard: none of their modules load in the whole run (the
    workers are processes of their own). `-X importtime` names every module imported."""
    result = vahana(
        "run", "-f", str(EXAMPLES / "hello.yaml"), "--workers=2", python=("-X", "importtime")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "vahana.rpc.server" in modules  # the list is the whole run's
    assert under(sorted(modules), NOT_FOR_RUN) == []


def test_run_exits_non_zero_and_shows_exit_code_3_when_a_task_fails() -> None:
    result = vahana("run", "-f", str(EXAMPLES / "failing.yaml"), "--workers=1")
    assert result.returncode == 1, result.stdout + result.stderr
    table = result.stdout[result.stdout.index("Results") :]
    row = next(line for line in table.splitlines() if "exits-three" in line)
    assert row.split()[1:3] == ["FAILED", "3"], row
    assert "did not complete" in result.stdout


def test_a_task_whose_files_could_not_be_moved_shows_why_and_no_exit_code(
    tmp_path: Path,
) -> None:
    tasks = tmp_path / "files.yaml"
    tasks.write_text(
        HEADER.replace("name: a", "name: no-input")
        + "spec:\n  command: echo ran\n"
        + "  inputFiles: [{source: 'file:///nonexistent/absent.txt', destination: in.txt}]\n"
        + "---\n"
        + HEADER.replace("name: a", "name: no-output")
        + "spec:\n  command: echo wrote nothing\n"
        + "  outputFiles: [{source: out.txt, destination: out.txt}]\n"
    )
    result = vahana("run", "-f", str(tasks), "--workers=1", "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 1, result.stdout + result.stderr
    table = result.stdout[result.stdout.index("Results") :]
    for name, why in (
        ("no-input", "absent.txt': not found"),
        ("no-output", "output 'out.txt': not found in the sandbox"),
    ):
        row = next(line for line in table.splitlines() if line.startswith(name))
        assert row.split()[1:3] == ["FAILED", "-"], row
        assert why in row, row


def test_the_result_table_shows_a_failure_message_from_its_start(tmp_path: Path) -> None:
    tasks = tmp_path / "fails.yaml"
    tasks.write_text(HEADER + "spec: {command: 'exit 3'}\n")
    result = vahana("run", "-f", str(tasks), "--workers=1")
    assert result.returncode == 1, result.stdout + result.stderr
    table = result.stdout[result.stdout.index("Results") :]
    row = next(line for line in table.splitlines() if line.startswith("a "))
    assert row.split()[1:3] == ["FAILED", "3"], row
    assert "command exited with code 3" in row, row


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("spec: {command: [unclosed", "line"),
        (
            HEADER + "spec: {command: x, colour: red}",
            "spec.colour",
        ),
        (
            HEADER + "spec: {command: x, resources: {cpu: '-1'}}",
            "spec.resources.cpu",
        ),
        (
            HEADER + "spec: {command: ''}",
            "spec.command",
        ),
    ],
)
def test_an_invalid_file_is_refused_naming_the_field_and_nothing_is_submitted(
    client: harness.Client, scheduler: harness.SchedulerProcess, document: str, field: str
) -> None:
    good = HEADER.replace("name: a", "name: fine") + "spec: {command: 'true'}\n---\n"
    result = vahana("submit", "-f", "-", f"--server={scheduler.address}", stdin=good + document)
    assert result.returncode == 2, result.stdout + result.stderr
    assert field in result.stderr
    assert "nothing was submitted" in result.stderr
    assert (
        vahana("get", "tasks", "-o", "json", f"--server={scheduler.address}").stdout.strip() == "[]"
    )


def test_client_commands_submit_get_logs_and_cancel(
    client: harness.Client,
    scheduler: harness.SchedulerProcess,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    start_worker("cli-worker", max_tasks=2)
    server = f"--server={scheduler.address}"
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: greet}\n"
        "spec: {command: 'echo hi from cli'}\n---\n"
        "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: forever}\n"
        "spec: {command: 'sleep 1000'}\n"
    )
    submitted = vahana("submit", "-f", str(tasks), server)
    assert submitted.returncode == 0, submitted.stderr
    assert "task/greet submitted" in submitted.stdout

    wait_until(
        lambda: client.status(client.get("greet").id) == pb.COMPLETED,
        timeout=20,
        message="greet done",
    )
    logs = vahana("logs", "greet", server)
    assert logs.returncode == 0 and "hi from cli" in logs.stdout
    # -o json / yaml: a list for `get tasks`, also of one task; an object for `get task`.
    one = vahana("get", "tasks", "--status", "COMPLETED", "-o", "json", server)
    assert one.returncode == 0, one.stderr
    assert [t["name"] for t in json.loads(one.stdout)] == ["greet"]
    as_yaml = vahana("get", "task", "greet", "-o", "yaml", server)
    assert as_yaml.returncode == 0, as_yaml.stderr
    shown = yaml.safe_load(as_yaml.stdout)
    assert shown["name"] == "greet" and shown["status"] == "COMPLETED"

    wait_until(
        lambda: client.status(client.get("forever").id) == pb.RUNNING,
        timeout=20,
        message="forever running",
    )
    listing = vahana("get", "tasks", server)
    assert (
        "greet" in listing.stdout and "COMPLETED" in listing.stdout and "RUNNING" in listing.stdout
    )
    workers = vahana("get", "workers", server)
    assert "cli-worker" in workers.stdout and "local" not in workers.stdout

    cancelled = vahana("cancel", "forever", server)
    assert cancelled.returncode == 0, cancelled.stderr
    wait_until(
        lambda: client.status(client.get("forever").id) == pb.CANCELLED,
        timeout=15,
        message="cancelled",
    )
    again = vahana("cancel", "forever", server)
    assert again.returncode == 1 and "already ended" in again.stdout


def test_an_unreachable_scheduler_gets_a_clear_message() -> None:
    result = vahana("get", "tasks", f"--server=127.0.0.1:{harness.free_port()}", timeout=30)
    assert result.returncode == 1
    assert "cannot reach the scheduler" in result.stderr


def test_piped_tables_keep_each_row_on_one_line_whatever_columns_says(
    client: harness.Client,
    scheduler: harness.SchedulerProcess,
    start_worker: WorkerFactory,
) -> None:
    """Piped, a table is not cut to the terminal's (or $COLUMNS') width: grep finds a task's
    row by its id, whole, and the headers are whole too."""
    start_worker("a-worker-with-a-rather-long-name", max_tasks=1)
    server = f"--server={scheduler.address}"
    name = "a-task-with-a-name-long-enough-to-fill-half-of-a-terminal"
    submitted = vahana(
        "submit",
        "-f",
        "-",
        server,
        stdin=HEADER.replace("name: a", f"name: {name}")
        + "spec: {command: 'echo done', workerSelector: {zone: nowhere}}\n",
    )
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.split()[-1]
    listing = vahana("get", "tasks", server, columns=80)
    row = next(line for line in listing.stdout.splitlines() if task_id in line)
    assert row.split()[:3] == [task_id, name, "PENDING"], listing.stdout
    one = vahana("get", "task", name, server, columns=80)
    assert any(line.startswith(f"{task_id}  {name}") for line in one.stdout.splitlines())
    workers = vahana("get", "workers", server, columns=40)
    header, _, row = workers.stdout.splitlines()[:3]
    assert header.split() == [
        *("ID", "POOL", "STATUS", "ACTIVE", "SLOTS", "CPU%", "MEM%", "LAST", "HEARTBEAT", "AGE")
    ], workers.stdout
    assert row.split()[:3] == ["a-worker-with-a-rather-long-name", "-", "AVAILABLE"], row


def test_cancel_says_what_became_of_the_task(
    client: harness.Client,
    scheduler: harness.SchedulerProcess,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    """A pending task or array is cancelled at once; a running one once its worker stops it."""
    start_worker("cancel-worker", max_tasks=1)
    server = f"--server={scheduler.address}"
    unmatched = "workerSelector: {zone: nowhere}"
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        HEADER.replace("name: a", "name: forever")
        + "spec: {command: 'sleep 1000'}\n---\n"
        + HEADER.replace("name: a", "name: waiting")
        + f"spec: {{command: 'true', {unmatched}}}\n---\n"
        + HEADER.replace("name: a", "name: sweep")
        + f"spec: {{command: 'true', array: {{count: 6}}, {unmatched}}}\n"
    )
    assert vahana("submit", "-f", str(tasks), server).returncode == 0
    wait_until(
        lambda: client.status(client.get("forever").id) == pb.RUNNING,
        timeout=20,
        message="forever running",
    )

    waiting = vahana("cancel", "waiting", server)
    assert (waiting.returncode, waiting.stdout) == (0, "task waiting: cancelled\n"), waiting
    sweep = vahana("cancel", "sweep", server)
    assert (sweep.returncode, sweep.stdout) == (0, "task sweep: cancelled\n"), sweep
    forever = vahana("cancel", "forever", server)
    assert forever.returncode == 0, forever.stdout + forever.stderr
    assert forever.stdout in (  # the worker may have stopped it before the command looked
        "task forever: cancel requested; it is RUNNING until its worker stops it\n",
        "task forever: cancelled\n",
    ), forever.stdout

    shown = vahana("get", "task", "sweep", server)
    header, _, row = shown.stdout.splitlines()[:3]
    assert header.split()[-2:] == ["CANCELLED", "INDICES"], shown.stdout
    assert row.split()[-6:] == ["0,", "1,", "2,", "3,", "4,", "5"], shown.stdout
