"""A worker that cannot make sandboxes in its working dir exits 1 before registering, saying
which path, why, and what to change — instead of failing every task it takes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[str]:
    """Makes `directory` unwritable for the worker; yields the error the worker should meet.
    Root writes through permissions, so as root it becomes a read-only bind mount."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield "Permission denied"
        finally:
            directory.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "--bind", str(directory), str(directory)], capture_output=True, text=True
    )
    require(mounted.returncode == 0, f"cannot bind-mount a directory: {mounted.stderr.strip()}")
    try:
        remounted = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True, text=True
        )
        require(remounted.returncode == 0, f"cannot remount read-only: {remounted.stderr}")
        yield "Read-only file system"
    finally:
        subprocess.run(["umount", str(directory)], check=False)


def test_a_worker_with_a_read_only_working_dir_exits_1_saying_why(
    client: harness.Client, start_worker: WorkerFactory, state_dir: Path
) -> None:
    working_dir = state_dir / "volume"
    working_dir.mkdir()
    with read_only(working_dir) as error:
        started = time.monotonic()
        worker = start_worker("black-hole", extra=(f"--working-dir={working_dir}",))
        assert worker.process is not None
        assert worker.process.wait(timeout=30) == 1
        seconds = time.monotonic() - started
    log = worker.log_text()
    assert 'msg="cannot make task sandboxes in the working directory"' in log, log
    assert f"cannot create {working_dir}/tasks: {error}" in log, log
    assert "--working-dir" in log  # what to change
    assert client.list_workers() == []  # it never registered, so it took no task
    print(f"\nexited 1 after {seconds:.2f}s: {error}")


def test_a_writable_working_dir_keeps_nothing_from_the_check(
    client: harness.Client, start_worker: WorkerFactory
) -> None:
    worker = start_worker("checked")
    wait_until(lambda: len(client.list_workers()) == 1, timeout=20, message="registered")
    assert sorted(p.name for p in (worker.working_dir / "tasks").iterdir()) == []
