"""The zipapp: built with shiv, it shows --help and runs a worker that stops cleanly on SIGTERM.

The same process-level check runs against `python -m vahana_worker`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration import harness
from tests.integration.worker import procs_helpers as ph
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "worker"))
import build_pyz  # noqa: E402


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / "worker" / "vahana_worker" / "proto" / "worker_pb2.py").exists():
        pytest.skip("generated stubs missing")
    return build_pyz.build(tmp_path_factory.mktemp("dist") / "worker.pyz")


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["SHIV_ROOT"] = str(tmp_path / "shiv")
    return env


def test_pyz_help_and_version(pyz: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    shown = subprocess.run(
        [sys.executable, str(pyz), "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "--server-address" in shown.stdout and "SERVER_ADDRESS" in shown.stdout
    version = subprocess.run(
        [sys.executable, str(pyz), "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert version.stdout.startswith("vahana-worker ")
    bad = subprocess.run(
        [sys.executable, str(pyz), "--task-timeout", "soon"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert bad.returncode == 2 and "task_timeout" in bad.stderr


def wait_for_text(path: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{path.read_text()}"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["pyz", "module"])
def test_worker_stops_cleanly_on_sigterm_while_scheduler_is_unreachable(
    how: str, pyz: Path, tmp_path: Path
) -> None:
    command = [str(pyz)] if how == "pyz" else ["-m", "vahana_worker"]
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                *command,
                "--server-address",
                "127.0.0.1:9",
                "--worker-id",
                "w-sigterm",
                "--working-dir",
                str(tmp_path / "wd"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=clean_env(tmp_path) if how == "pyz" else None,
        )
    try:
        wait_for_text(log, "call to scheduler failed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert 'reason="received SIGTERM"' in text
    assert "worker stopped" in text and "worker_id=w-sigterm" in text


def test_a_pyz_worker_s_guardian_ends_its_tasks_after_kill_9(
    pyz: Path, tmp_path: Path, client: harness.Client, scheduler: harness.SchedulerProcess
) -> None:
    """The guardian is started from the same zipapp (shiv's extraction of it) as its worker."""
    pids = tmp_path / "task.pids"
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(pyz),
                f"--server-address={scheduler.address}",
                "--worker-id=w-pyz-guarded",
                f"--working-dir={tmp_path / 'wd'}",
                "--cgroups=off",
                "--kill-grace=1s",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=clean_env(tmp_path),
            start_new_session=True,
        )
    with ph.killed_afterwards(pids):
        try:
            client.submit(
                harness.submission(ph.escapee_command(pids, f"echo $$ >> {pids}; sleep 1000"))
            )
            wait_until(lambda: len(ph.pids_in(pids)) == 5, timeout=60, message="task running")
            assert "guardian=" in log.read_text()
            proc.kill()
            proc.wait()
            wait_until(
                lambda: not any(ph.alive(pid) for pid in ph.pids_in(pids)),
                timeout=scheduler.missed_heartbeats * scheduler.heartbeat_interval + 2,
                message="the pyz worker's task processes gone after kill -9",
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
