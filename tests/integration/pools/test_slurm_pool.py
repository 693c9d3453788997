"""SLURM pools on a real one-node SLURM: pilots run many tasks, scancel and removal behave."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana.proto import worker_pb2

from tests.fixtures import slurm
from tests.integration import harness
from tests.integration.pools.embedded import EmbeddedScheduler
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
KEY = "default/hpc"


def pool_yaml(*, partition: str = "debug", workers: int = 2, walltime: str = "10m") -> str:
    return f"""\
apiVersion: vahana.dev/v1alpha1
kind: WorkerPool
metadata: {{name: hpc}}
spec:
  type: slurm
  minWorkers: {workers}
  maxWorkers: {workers}
  tasksPerWorker: 2
  walltime: {walltime}
  idleTimeout: 10m
  resources: {{cpu: 1, memory: 256Mi}}
  slurm: {{partition: {partition}, workingDir: /tmp/vahana-slurm-test}}
"""


@pytest.fixture
def slurm_env(slurm_conf: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SLURM_CONF", slurm_conf)
    yield slurm_conf
    subprocess.run(["scancel", "--me"], check=False)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vh-") as path:
        yield Path(path)


def _ready(sched: EmbeddedScheduler, count: int) -> bool:
    return len(sched.workers(KEY)) >= count


def _all_final(client: harness.Client, ids: list[str]) -> bool:
    return all(client.status(i) in harness.FINAL for i in ids)


def _jobs(conf: str) -> list[str]:
    return [n for n in slurm.squeue_names(conf) if n.startswith("worker_default-hpc-")]


def test_a_slurm_pool_of_two_pilots_runs_500_tasks(slurm_env: str, short_dir: Path) -> None:
    with EmbeddedScheduler(short_dir, pool_yaml()) as sched:
        assert sched.client is not None
        wait_until(lambda: _ready(sched, 2), timeout=90, message="2 pilots registered")
        ids = sched.client.submit(*(harness.submission("true", f"t{i}") for i in range(500)))
        wait_until(lambda: _all_final(sched.client, ids), timeout=120, message="500 tasks final")
        assert {sched.client.status(i) for i in ids} == {worker_pb2.COMPLETED}
        assert len({sched.client.get(i).worker_id for i in ids}) == 2
        assert len(_jobs(slurm_env)) == 2
        sched.call(sched.pools.remove(KEY))  # pool removal: its jobs are cancelled
        wait_until(lambda: not _jobs(slurm_env), timeout=30, message="squeue empty")


def test_scancel_of_a_pilot_mid_task_reruns_the_task_on_the_other(
    slurm_env: str, short_dir: Path
) -> None:
    with EmbeddedScheduler(short_dir, pool_yaml()) as sched:
        assert sched.client is not None
        wait_until(lambda: _ready(sched, 2), timeout=90, message="2 pilots registered")
        [task] = sched.client.submit(harness.submission("sleep 6", "long"))
        wait_until(lambda: sched.client.status(task) == worker_pb2.RUNNING, timeout=20)
        first = sched.client.get(task).worker_id
        job = sched.adapter(KEY)._jobs[first]
        subprocess.run(["scancel", job], check=True)
        wait_until(lambda: sched.client.status(task) in harness.FINAL, timeout=90)
        info = sched.client.get(task)
        assert info.status == worker_pb2.COMPLETED, info
        assert info.worker_id != first


def test_an_unknown_partition_is_reported_verbatim_and_no_task_is_lost(
    slurm_env: str, short_dir: Path
) -> None:
    with EmbeddedScheduler(short_dir, pool_yaml(partition="nope")) as sched:
        assert sched.client is not None
        [task] = sched.client.submit(harness.submission("true", "waits"))
        wait_until(
            lambda: "invalid partition" in (sched.status(KEY).get("lastError") or ""),
            timeout=30,
            message="sbatch's error on the pool",
        )
        assert sched.client.status(task) == worker_pb2.PENDING
