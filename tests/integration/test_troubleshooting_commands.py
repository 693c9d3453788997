"""The commands docs/troubleshooting.md gives for talking to the scheduler directly work as
written: every `vahana --server localhost:50051 …` line (and `grpcurl` line, where grpcurl is
installed) runs against a real scheduler with a worker and a task, and exits 0."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"


def doc_commands(program: str) -> list[str]:
    """The doc's shell lines that start with `program`, without their comments."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command.startswith(program + " "):
                lines.append(command)
    return lines


def test_the_doc_has_scheduler_commands() -> None:
    assert len(doc_commands("vahana")) >= 3


def test_every_vahana_and_grpcurl_command_of_the_doc_runs(
    client: harness.Client, scheduler: harness.SchedulerProcess, start_worker: WorkerFactory
) -> None:
    start_worker("doc-worker")
    [task] = client.submit(harness.submission("echo troubleshooting", "doc-task"))
    wait_until(lambda: client.status(task) == pb.COMPLETED, timeout=30, message="doc-task")
    commands = doc_commands("vahana")
    if shutil.which("grpcurl"):
        commands += doc_commands("grpcurl")
    for command in commands:
        argv = shlex.split(command.replace("localhost:50051", scheduler.address))
        argv = ["doc-task" if word == "NAME" else word for word in argv]
        if argv[0] == "vahana":
            argv = [sys.executable, "-m", "vahana.cli.main", *argv[1:]]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert done.returncode == 0, f"{command}: {done.returncode}\n{done.stdout}{done.stderr}"
        if "get workers" in command:
            assert "doc-worker" in done.stdout
        if "get task " in command:
            assert "doc-task" in done.stdout
