"""The worker in the project's image, run the way a Kubernetes Pod runs it: PID 1 of its
container (no --init), uid 65532, no capabilities, no privilege escalation, a 512 MiB limit,
the working dir a volume, against a scheduler on this host's loopback. There it may make no
cgroup, so it finds a task's processes by their marker among the orphans it adopts as PID 1.

Few and broad (the image build is shared by the session, `vahana_image`): one test runs 500
orphaning tasks and the escapee tasks (completed, timed out, cancelled) and counts, from the
host, the zombies and leftover processes in the container's PID namespace; one starts a worker
on a read-only volume. Skipped (failed under CI=true) without podman and the base image.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb
from vahana_worker import procs

from tests.fixtures import image
from tests.integration import harness
from tests.integration.worker import procs_helpers as ph
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

POD = (
    "--network", "host", "--user", "65532:65532", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "-m", "512m",
)  # fmt: skip
"""As build_worker_job describes a worker Pod (its securityContext and limits)."""


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def worker_image(vahana_image: str) -> str:
    """The image of these sources (its tag names their digest)."""
    inspected = json.loads(podman("image", "inspect", vahana_image).stdout)[0]
    assert (inspected["Config"].get("Labels") or {}).get(image.DIGEST_LABEL)
    return vahana_image


@pytest.fixture
def volume() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vh-ctr-") as path:
        os.chmod(path, 0o777)  # the container's user writes its sandboxes there
        yield Path(path)


class Container:
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def host_pid(self) -> int:
        """The host's pid of the container's PID 1."""
        return int(podman("inspect", "-f", "{{.State.Pid}}", self.name).stdout.strip() or 0)

    def processes(self) -> list[procs.Stat]:
        """Every process of the container's PID namespace (host pids), PID 1 included."""
        init = self.host_pid
        namespace = os.readlink(f"/proc/{init}/ns/pid")
        found = []
        for pid in procs.pids():
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") != namespace:
                    continue
            except OSError:
                continue
            stat = procs.stat(pid)
            if stat is not None:
                found.append(stat)
        return found

    def running_ns_pids(self) -> set[int]:
        """The pids, as the container sees them, of its running processes but PID 1."""
        found = set()
        for stat in self.leftovers():
            if stat.ended:
                continue
            status = procs.read(f"/proc/{stat.pid}/status") or b""
            for line in status.decode().splitlines():
                if line.startswith("NSpid:"):
                    found.add(int(line.split()[-1]))
        return found

    def leftovers(self) -> list[procs.Stat]:
        """The container's processes other than the worker (zombies included)."""
        init = self.host_pid
        return [s for s in self.processes() if s.pid != init]

    def logs(self) -> str:
        done = podman("logs", self.name)
        return done.stdout + done.stderr


def run_worker(
    image_id: str,
    scheduler: harness.SchedulerProcess,
    volume: Path,
    name: str,
    *flags: str,
    read_only: bool = False,
) -> Container:
    started = podman(
        "run", "-d", "--name", name, *POD, "-v", f"{volume}:/work{':ro' if read_only else ''}",
        image_id, "vahana-worker", f"--server-address={scheduler.address}",
        f"--worker-id={name}", "--working-dir=/work", "--heartbeat-interval=1s", *flags,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    return Container(name)


def test_a_worker_as_pid_1_leaves_no_zombie_and_no_process_of_its_tasks(
    worker_image: str,
    scheduler: harness.SchedulerProcess,
    client: harness.Client,
    volume: Path,
) -> None:
    name = f"vahana-worker-pid1-{os.getpid()}"
    container = run_worker(
        worker_image, scheduler, volume, name, "--max-tasks=4", "--kill-grace=1s"
    )
    try:
        wait_until(lambda: len(client.list_workers()) == 1, timeout=60, message="registered")
        status = Path(f"/proc/{container.host_pid}/status").read_text()
        nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
        assert nspid.split()[-1] == "1", nspid  # the worker is PID 1 in its namespace
        assert 'msg="no task cgroups' in container.logs()  # the marker's way, as in a Pod
        assert "reaper=init" in container.logs()

        # 500 tasks that each leave an orphan; one in five exits 3.
        commands = [
            "(sleep 0.2 &); exit 3" if i % 5 == 0 else "(sleep 0.2 &); true" for i in range(500)
        ]
        started = time.monotonic()
        ids = client.submit(*(harness.submission(c, f"o{i}") for i, c in enumerate(commands)))
        tasks = wait_until(
            lambda: (lambda ts: ts if all(t.status in harness.FINAL for t in ts) else None)(
                list(client.tasks.ListTasks(tasks_pb.ListTasksRequest(ids=ids), timeout=10).tasks)
            ),
            timeout=240,
            message="500 tasks final",
        )
        seconds = time.monotonic() - started
        by_id = {t.id: t for t in tasks}
        for task_id, command in zip(ids, commands, strict=True):
            want = (pb.FAILED, 3) if "exit 3" in command else (pb.COMPLETED, 0)
            assert (by_id[task_id].status, by_id[task_id].exit_code) == want, by_id[task_id]
        wait_until(
            lambda: container.leftovers() == [],
            timeout=5,
            message="no zombie and no other process in the container",
        )
        print(f"\ncontainer: 500 orphaning tasks in {seconds:.1f}s; zombies 0, leftovers 0")

        # Escapees of every kind, however the task ends.
        for ending in ("completed", "timed_out", "cancelled"):
            pids, cleared = volume / f"{ending}.pids", volume / f"{ending}.cleared"
            tail = "sleep 1" if ending == "completed" else "sleep 1000"
            command = ph.escapee_command(
                Path("/work") / pids.name, tail, cleared=Path("/work") / cleared.name
            )
            options = {"timeout_seconds": 3} if ending == "timed_out" else {}
            [task_id] = client.submit(harness.submission(command, ending, **options))
            wait_until(
                lambda p=pids, c=cleared: len(ph.pids_in(p)) == 4 and len(ph.pids_in(c)) == 2,
                timeout=30,
                message=f"{ending}: six escapees",
            )
            assert container.running_ns_pids() >= {*ph.pids_in(pids), *ph.pids_in(cleared)}
            if ending == "cancelled":
                request = tasks_pb.CancelTaskRequest(id=task_id, reason="test")
                assert client.tasks.CancelTask(request, timeout=5).cancelled
            task = wait_until(
                lambda t=task_id: (lambda i: i if i.status in harness.FINAL else None)(
                    client.get(t)
                ),
                timeout=30,
                message=f"{ending}: final",
            )
            seen = time.monotonic()
            assert pb.TaskStatus.Name(task.status).lower() == ending, task
            # At the report only the one without a marker or the output pipe may be left...
            closed_all = ph.pids_in(cleared)[1]
            assert container.running_ns_pids() <= {closed_all}
            # ...and it goes at the reaper's next scan once no task runs (then the grace).
            wait_until(
                lambda: container.leftovers() == [],
                timeout=1 + 3,
                message=f"{ending}: nothing of the task left in the container",
            )
            print(f"container/{ending}: all gone {time.monotonic() - seen:.2f}s after final")
    finally:
        logs = container.logs()
        podman("rm", "-f", "-t", "5", name)
    assert "Traceback" not in logs, logs[-3000:]


def test_a_worker_on_a_read_only_volume_exits_1_saying_why(
    worker_image: str, scheduler: harness.SchedulerProcess, client: harness.Client, volume: Path
) -> None:
    name = f"vahana-worker-ro-{os.getpid()}"
    container = run_worker(worker_image, scheduler, volume, name, read_only=True)
    try:
        waited = podman("wait", name, timeout=60)
        assert waited.stdout.strip() == "1", waited
        logs = container.logs()
        assert "cannot create /work/tasks: Read-only file system (EROFS)" in logs, logs
        assert client.list_workers() == []
    finally:
        podman("rm", "-f", "-t", "5", name)
