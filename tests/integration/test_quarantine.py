"""A black-hole worker is quarantined: its working dir turns read-only after it started, so it
fails every task it takes in the worker; the scheduler stops giving it tasks after 5, shows it
UNHEALTHY with the reason, the worker is refused and exits 1, and every task completes on a
good worker without spending its retry budget. On the host, and as a container of our image.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from vahana.proto import worker_pb2

from tests.conftest import require
from tests.integration import harness
from tests.integration.harness import FINAL
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
TASKS = 20


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own: it can be remounted read-only under a running worker."""
    mount_point = tmp_path / "work"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=1777", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    require(
        mounted.returncode == 0,
        f"cannot mount a tmpfs (needs root and CAP_SYS_ADMIN): {mounted.stderr.strip()}",
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def remount_read_only(path: Path) -> None:
    done = subprocess.run(
        ["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def bad_worker(client: harness.Client) -> worker_pb2.WorkerInfo | None:
    return next((w for w in client.list_workers() if w.worker_id == "bad"), None)


def quarantined_then_all_complete(
    scheduler: harness.SchedulerProcess,
    client: harness.Client,
    exited: Callable[[], int | None],
    start_good_worker: Callable[[], object],
) -> None:
    ids = client.submit(*(harness.submission(f"echo {n}", name=f"t{n}") for n in range(TASKS)))
    info = wait_until(
        lambda: (w := bad_worker(client)) and w.status == worker_pb2.UNHEALTHY and w,
        timeout=60, message="the bad worker quarantined",
    )  # fmt: skip
    assert info.status_message.startswith("quarantined: its last 5 attempts failed in the worker")
    assert "Read-only file system" in info.status_message, info.status_message
    # It asks again, is refused, and exits 1 (its pool would start another in its place).
    assert wait_until(exited, timeout=60, message="the bad worker exited") == 1
    cli = subprocess.run(
        [sys.executable, "-m", "vahana.cli.main", "get", "workers",
         f"--server={scheduler.address}"],
        capture_output=True, text=True, timeout=30, check=True,
        env={**os.environ, "COLUMNS": "400"},  # a wide terminal: the reason on one line
    )  # fmt: skip
    assert "REASON" in cli.stdout and "quarantined" in cli.stdout, cli.stdout
    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{scheduler.metrics_port}/metrics", timeout=10)
        .read()
        .decode()
    )
    assert 'vahana_workers_quarantined_total{pool="-"} 1.0' in metrics
    start_good_worker()
    wait_until(
        lambda: all(client.status(i) in FINAL for i in ids), timeout=120,
        message="every task final",
    )  # fmt: skip
    infos = [client.get(i) for i in ids]
    assert {worker_pb2.TaskStatus.Name(t.status) for t in infos} == {"COMPLETED"}
    failed_on_bad = [t for t in infos if t.attempt > 1]
    assert len(failed_on_bad) >= 5, "the bad worker failed at least five of them"
    print(f"tasks={TASKS} failed first on the quarantined worker={len(failed_on_bad)} "
          f"completed={len(infos)}")  # fmt: skip


def test_a_worker_whose_working_dir_turns_read_only_is_quarantined(
    tmp_path: Path, state_dir: Path, volume: Path
) -> None:
    scheduler = harness.SchedulerProcess(state_dir=state_dir, metrics_port=harness.free_port())
    scheduler.start()
    client = harness.Client(scheduler.address)
    bad = harness.WorkerProcess(
        "bad", scheduler.address, tmp_path / "bad", extra=(f"--working-dir={volume}",)
    ).start()
    good = harness.WorkerProcess("good", scheduler.address, tmp_path / "good")
    try:
        wait_until(lambda: bad_worker(client), timeout=30, message="the bad worker registered")
        remount_read_only(volume)
        quarantined_then_all_complete(
            scheduler,
            client,
            lambda: bad.process.poll(),
            good.start,  # type: ignore[union-attr]
        )
        assert "the scheduler refuses this worker" in bad.log_text()
    finally:
        good.cleanup()
        bad.cleanup()
        client.close()
        scheduler.stop()


def test_a_worker_container_whose_volume_turns_read_only_is_quarantined(
    tmp_path: Path, state_dir: Path, volume: Path, vahana_image: str
) -> None:
    scheduler = harness.SchedulerProcess(state_dir=state_dir, metrics_port=harness.free_port())
    scheduler.start()
    client = harness.Client(scheduler.address)
    name = f"vahana-black-hole-{scheduler.port}"
    # As a kubernetes pool's Pod runs it: PID 1, uid 65532, no capabilities, a volume at /work.
    subprocess.run(
        ["podman", "run", "-d", "--name", name, "--network", "host", "--user", "65532:65532",
         "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "-m", "512m",
         "-v", f"{volume}:/work", vahana_image, "vahana-worker",
         f"--server-address={scheduler.address}", "--worker-id=bad", "--working-dir=/work",
         "--heartbeat-interval=1s"],
        check=True, capture_output=True,
    )  # fmt: skip
    good = harness.WorkerProcess("good", scheduler.address, tmp_path / "good")

    def exited() -> int | None:
        state = json.loads(
            subprocess.run(["podman", "inspect", name], capture_output=True, check=True).stdout
        )[0]["State"]
        return None if state["Running"] else int(state["ExitCode"])

    try:
        wait_until(lambda: bad_worker(client), timeout=60, message="the container registered")
        remount_read_only(volume)
        quarantined_then_all_complete(scheduler, client, exited, good.start)
        logs = subprocess.run(["podman", "logs", name], capture_output=True, text=True).stderr
        assert "the scheduler refuses this worker" in logs
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(["podman", "rm", "-f", name], capture_output=True, timeout=60)
        good.cleanup()
        client.close()
        scheduler.stop()
