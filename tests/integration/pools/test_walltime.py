"""Walltime-aware pilots end to end: a bare-metal pool over the real sshd, pilots with a walltime.

Issue 6 asks: "a pilot with 60 s of walltime left is not given a task with a 120 s timeout; a
replacement pilot is running before it expires; no task fails because a pilot reached its
walltime". Real walltimes are hours; this test scales them down so it runs in about a minute:

- walltime 60 s per pilot (the bash script's `timeout` and the worker's `--walltime`), one pilot
  at a time (minWorkers = maxWorkers = 1, so any second pilot is a replacement);
- drainTimeout 2 s (the default is 30 s): the pilot drains itself at its allocation's end minus
  2 s minus the worker's fixed 10 s margin, i.e. 12 s before it ends;
- the pool's replacement lead is min(60 s, walltime / 4) = 15 s: 15 s before a pilot's end it no
  longer counts as capacity and a replacement is started;
- "60 s left, 120 s timeout" becomes "under 45 s left, 50 s timeout": the long task is submitted
  once the first pilot has less than 45 s left, so it must not go there, yet it fits a fresh
  pilot (60 s) as soon as one registers.

What it shows, while a stream of short tasks runs across the handover:
1. the long task stays PENDING, with the "no worker's allocation lasts…" reason, for as long as
   only the first pilot exists, and then runs on the replacement;
2. the replacement registered before the first pilot's allocation ended (ListWorkers'
   registered_at against the old pilot's capabilities.allocation_ends_at);
3. every task completed: none FAILED, none charged to the task's own retry budget.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2
from vahana.proto import worker_pb2

from tests.fixtures import sshd
from tests.integration import harness
from tests.integration.pools.embedded import EmbeddedScheduler
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
KEY = "default/short"
WALLTIME = 60.0
LONG_TIMEOUT = 50.0
"""Longer than what is left of the first pilot when the task arrives, shorter than a walltime."""
SUBMIT_LONG_BELOW = 45.0
"""The long task is submitted once the first pilot has less than this many seconds left."""
IN_FLIGHT = 2
"""Short tasks kept submitted at any time (tasksPerWorker)."""


def pool_yaml(server: sshd.Sshd, work: Path) -> str:
    return f"""\
apiVersion: vahana.dev/v1alpha1
kind: WorkerPool
metadata: {{name: short}}
spec:
  type: baremetal
  minWorkers: 1
  maxWorkers: 1
  tasksPerWorker: {IN_FLIGHT}
  idleTimeout: 10m
  walltime: {WALLTIME:g}s
  drainTimeout: 2s
  baremetal:
    hosts:
      - {{host: 127.0.0.1, port: {server.port}, user: {server.user}, workersPerHost: 2}}
    sshKeyFile: {server.key_file}
    knownHostsFile: {server.known_hosts_file}
    workingDir: {work}
"""


@pytest.fixture
def dirs() -> Iterator[tuple[Path, Path]]:
    with (
        tempfile.TemporaryDirectory(prefix="vh-") as state,
        tempfile.TemporaryDirectory(prefix="vw-") as work,
    ):
        yield Path(state), Path(work)


def _seconds(stamp: timestamp_pb2.Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


@dataclasses.dataclass
class Pilot:
    worker_id: str
    registered_at: float
    allocation_ends_at: float
    last_seen: float = 0.0


LongState = tuple[int, str, str, frozenset[str]]


@dataclasses.dataclass
class Run:
    """What the test saw while it waited: the pilots, the stream, the long task's states."""

    client: harness.Client
    pilots: dict[str, Pilot] = dataclasses.field(default_factory=dict)
    listed: set[str] = dataclasses.field(default_factory=set)
    stream: list[str] = dataclasses.field(default_factory=list)
    in_flight: list[str] = dataclasses.field(default_factory=list)
    long_task: str = ""
    long_states: list[LongState] = dataclasses.field(default_factory=list)
    """The long task at each look: status, worker, pending reason, the pilots listed."""

    def observe(self) -> None:
        """One look at the scheduler: its pilots, the long task; keeps the stream going."""
        now = time.time()
        self.listed = set()
        for info in self.client.list_workers():
            if info.pool != KEY:
                continue
            self.listed.add(info.worker_id)
            pilot = self.pilots.get(info.worker_id)
            if pilot is None:
                assert info.capabilities.HasField("allocation_ends_at"), info
                pilot = self.pilots[info.worker_id] = Pilot(
                    info.worker_id,
                    _seconds(info.registered_at),
                    _seconds(info.capabilities.allocation_ends_at),
                )
            pilot.last_seen = now
        if self.long_task:
            task = self.client.get(self.long_task)
            # The pilots listed on both sides of that look: a replacement that registered
            # in between may already be what the task's reason speaks of.
            around = self.listed | {
                info.worker_id for info in self.client.list_workers() if info.pool == KEY
            }
            self.long_states.append(
                (task.status, task.worker_id, task.pending_reason, frozenset(around))
            )
        self.in_flight = [t for t in self.in_flight if self.client.status(t) not in harness.FINAL]
        missing = IN_FLIGHT - len(self.in_flight)
        if missing > 0:
            ids = self.client.submit(
                *(
                    harness.submission("sleep 0.3", f"s{len(self.stream) + i}")
                    for i in range(missing)
                )
            )
            self.stream.extend(ids)
            self.in_flight.extend(ids)


def test_pilots_near_their_walltime_get_no_long_task_and_are_replaced_in_time(
    sshd_server: sshd.Sshd, dirs: tuple[Path, Path]
) -> None:
    state, work = dirs
    started = time.monotonic()
    with EmbeddedScheduler(state, pool_yaml(sshd_server, work)) as sched:
        assert sched.client is not None
        client = sched.client
        run = Run(client)

        def first_pilot() -> bool:
            run.observe()
            return bool(run.pilots)

        wait_until(first_pilot, timeout=60, message="the first pilot registered")
        [first] = run.pilots.values()
        assert first.allocation_ends_at - first.registered_at <= WALLTIME

        # (1) a task that would outlive the first pilot: submitted when it has < 45 s left
        def first_is_short_lived() -> bool:
            run.observe()
            return first.allocation_ends_at - time.time() < SUBMIT_LONG_BELOW

        wait_until(first_is_short_lived, timeout=WALLTIME, message="the first pilot ageing")
        [run.long_task] = client.submit(
            harness.submission("true", "long", timeout_seconds=LONG_TIMEOUT)
        )

        def handed_over() -> bool:
            """The first pilot is gone, the long task and a short one completed elsewhere."""
            run.observe()
            if first.worker_id in run.listed or len(run.pilots) < 2:
                return False
            status = run.long_states[-1][0]
            if status != worker_pb2.COMPLETED:
                return False
            done = [client.get(t) for t in run.stream if client.status(t) in harness.FINAL]
            return any(t.worker_id != first.worker_id for t in done)

        wait_until(handed_over, timeout=WALLTIME + 30, message="the handover to a replacement")
        wait_until(
            lambda: all(client.status(t) in harness.FINAL for t in run.stream),
            timeout=30,
            message="the last short tasks",
        )

        # (1) never on the first pilot; pending with the allocation reason while it was alone
        long = client.get(run.long_task)
        second = run.pilots[long.worker_id]
        assert second.worker_id != first.worker_id, long
        assert long.status == worker_pb2.COMPLETED and long.task_failures == 0, long
        assert all(state[1] != first.worker_id for state in run.long_states)
        waiting = [
            reason
            for status, _, reason, listed in run.long_states
            if status == worker_pb2.PENDING and listed == {first.worker_id}
        ]
        # Refused for its allocation; at the very end the first pilot drains itself, and if the
        # replacement is slow to register (a loaded machine) the reason says so instead.
        assert waiting and "allocation lasts" in waiting[0], waiting
        assert all(
            "allocation lasts" in reason or "draining or unhealthy" in reason for reason in waiting
        ), waiting
        assert _seconds(long.started_at) >= second.registered_at

        # (2) the replacement was registered before the first pilot's allocation ended
        assert second.registered_at < first.allocation_ends_at, (second, first)
        assert first.last_seen < first.allocation_ends_at  # it left before its end: drained

        # (3) the stream ran on both pilots and nothing failed or used the task retry budget
        tasks = [client.get(t) for t in run.stream]
        assert {t.status for t in tasks} == {worker_pb2.COMPLETED}, [
            (t.name, t.status, t.message) for t in tasks if t.status != worker_pb2.COMPLETED
        ]
        assert all(t.task_failures == 0 for t in tasks)
        assert {t.worker_id for t in tasks} >= {first.worker_id, second.worker_id}
    print(
        f"walltime handover: {len(tasks)} short tasks; replacement registered "
        f"{first.allocation_ends_at - second.registered_at:.1f}s before the first pilot's end; "
        f"long task pending {len(waiting)} looks; {time.monotonic() - started:.0f}s"
    )
