"""The pure parts of finding a task's processes: /proc parsing, the marker, the process tree,
the cgroup join prefix, the parent-death option of the launcher, and `taskprocs.end`'s order
of signals (SIGTERM, the grace, SIGKILL) with a made-up task."""

from __future__ import annotations

import signal
from collections.abc import Iterable
from pathlib import Path

import pytest
from vahana_worker import cgroups, limits, procs, reaper, taskprocs

NO_SUCH_GROUP = 2**22 + 1
"""Above the largest pid Linux gives (2**22): a process group that cannot exist."""


def test_stat_is_read_after_the_command_name_which_may_hold_spaces_and_parentheses() -> None:
    fields = ["S", "1", "42", "42"] + ["0"] * 15 + ["123456"] + ["0"] * 5
    stat = procs.parse_stat("4242 (we ird) (name) " + " ".join(fields))
    assert stat == procs.Stat(pid=4242, ppid=1, pgid=42, sid=42, state="S", start=123456)
    assert not stat.ended
    zombie = procs.parse_stat("7 (x) Z 1 7 7 " + " ".join(["0"] * 15) + " 99")
    assert zombie is not None and zombie.ended and zombie.start == 99
    assert procs.parse_stat("garbage") is None
    assert procs.parse_stat("1 (x) S 1") is None


def test_the_marker_is_found_in_an_environment_block() -> None:
    block = b"PATH=/bin\0VAHANA_TASK=t-a1@12.34@w=1\0X=\0"
    assert procs.parse_environ(block, "VAHANA_TASK") == "t-a1@12.34@w=1"
    assert procs.parse_environ(block, "X") == ""
    assert procs.parse_environ(block, "VAHANA") is None
    assert procs.parse_environ(b"", "PATH") is None


@pytest.mark.parametrize("worker_id", ["w1", "pool/w@2", "a@b@c", "host-1a2b"])
def test_a_marker_reads_back_whatever_the_worker_id_holds(worker_id: str) -> None:
    marker = procs.Marker(worker_id, procs.Life(4242, 98765), "task_1-a3")
    assert str(marker).startswith("task_1-a3@4242.98765@")
    assert procs.Marker.parse(str(marker)) == marker


@pytest.mark.parametrize("text", ["", "t-a1", "t-a1@12@w", "t-a1@x.1@w", "@1.2@w", "t@1.2"])
def test_a_malformed_marker_is_no_marker(text: str) -> None:
    assert procs.Marker.parse(text) is None


def test_a_life_is_a_pid_and_a_start_time() -> None:
    assert procs.Life.parse("12.34") == procs.Life(12, 34)
    assert str(procs.Life(12, 34)) == "12.34"
    for text in ("12", "12.", ".3", "a.b", "1.2.3"):
        assert procs.Life.parse(text) is None
    me = procs.Life.current()
    assert me.alive()
    assert not procs.Life(me.pid, me.start + 1).alive()  # same pid, another process


def test_descendants_follow_the_tree_below_the_roots_only() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 20: 1, 21: 20, 30: 12}
    assert procs.descendants(parents, [10]) == {11, 12, 30}
    assert procs.descendants(parents, [11, 20]) == {12, 30, 21}
    assert procs.descendants(parents, [99]) == set()


def test_the_join_prefix_quotes_every_path_and_fails_the_task_with_126() -> None:
    prefix = cgroups.join_prefix(["/cg/pids/a b@1.2@t/cgroup.procs", "/cg/m/it's/cgroup.procs"])
    assert prefix.startswith("{ echo 0 > '/cg/pids/a b@1.2@t/cgroup.procs' && ")
    assert """echo 0 > '/cg/m/it'"'"'s/cgroup.procs'; }""" in prefix
    assert prefix.endswith("exit 126; }; ")


def test_the_launcher_asks_for_a_parent_death_signal_only_when_it_runs_anyway() -> None:
    argv = ["bash", "-c", "true"]
    assert limits.command_line(argv, limits.Limits(), parent=42) == argv
    line = limits.command_line(argv, limits.Limits(open_files=10), parent=42)
    assert f"PDEATHSIG={int(signal.SIGKILL)}:42" in line
    assert line.index("PDEATHSIG=9:42") < line.index("--")


class FakeTask:
    """A task whose leftovers exit `term_rounds` looks after SIGTERM (never, if they ignore
    it) and at once on SIGKILL."""

    def __init__(self, count: int, *, ignores_term: bool) -> None:
        self.left = [procs.Stat(1000 + i, 1, 1000, 1000, "S", 5) for i in range(count)]
        self.ignores_term = ignores_term
        self.sent: list[int] = []

    def find(self) -> list[procs.Stat]:
        return list(self.left)

    def signal(self, found: Iterable[procs.Stat], sig: int) -> int:
        found = list(found)
        self.sent.append(sig)
        if sig == signal.SIGKILL or not self.ignores_term:
            self.left = []
        return len(found)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds


def test_a_task_that_left_nothing_costs_one_look() -> None:
    task, clock = FakeTask(0, ignores_term=False), FakeClock()
    left = taskprocs.end(task, pgid=NO_SUCH_GROUP, grace=2.0, wait=clock.wait, clock=clock)
    assert left == 0 and task.sent == [] and clock.now == 100.0


def test_leftovers_get_sigterm_and_only_those_that_ignore_it_sigkill_after_the_grace() -> None:
    polite, clock = FakeTask(3, ignores_term=False), FakeClock()
    assert taskprocs.end(polite, pgid=NO_SUCH_GROUP, grace=2.0, wait=clock.wait, clock=clock) == 3
    assert polite.sent == [signal.SIGTERM] and clock.now <= 100.0 + taskprocs.POLL  # one look
    stubborn, clock = FakeTask(2, ignores_term=True), FakeClock()
    assert taskprocs.end(stubborn, pgid=NO_SUCH_GROUP, grace=2.0, wait=clock.wait, clock=clock) == 2
    assert stubborn.sent == [signal.SIGTERM, signal.SIGKILL]
    assert 102.0 <= clock.now < 102.0 + 2 * taskprocs.POLL


def test_after_a_timeout_s_sigterm_the_rest_of_the_grace_is_not_waited_again() -> None:
    stubborn, clock = FakeTask(1, ignores_term=True), FakeClock()
    termed_at = clock.now - 5.0  # the timeout's SIGTERM, a grace ago
    taskprocs.end(
        stubborn, pgid=NO_SUCH_GROUP, grace=2.0, termed_at=termed_at, wait=clock.wait, clock=clock
    )
    assert stubborn.sent == [signal.SIGKILL] and clock.now <= 100.0 + taskprocs.POLL


def test_task_cgroups_of_live_other_lives_are_no_leftovers(tmp_path: Path) -> None:
    """Names carry the life that made them: a start-up sweep takes this life's, dead lives'
    and unnamed (older) ones, never those of a worker process that still runs."""
    plan = cgroups.Plan({cgroups.PIDS: (tmp_path, 1)})
    me = procs.Life.current()
    init = procs.stat(1)
    assert init is not None
    living_other = procs.Life(1, init.start)
    dead = procs.Life(me.pid, me.start + 1)
    for name in (
        f"vahana-w@{me}@t-a1",
        f"vahana-w@{dead}@t-a2",
        "vahana-w@t-a3",
        f"vahana-w@{living_other}@t-a4",
        f"vahana-w-2@{dead}@t-a5",  # another worker whose id starts with this one's
    ):
        (tmp_path / name).mkdir()
    manager = cgroups.Manager(plan, prefix="vahana-w", life=me)
    names = sorted(next(iter(c.dirs.values()))[0].name for c in manager.leftovers())
    assert names == sorted([f"vahana-w@{me}@t-a1", f"vahana-w@{dead}@t-a2", "vahana-w@t-a3"])
    own = manager.of_life(dead)
    assert [next(iter(c.dirs.values()))[0].name for c in own] == [f"vahana-w@{dead}@t-a2"]


def test_a_task_without_limits_is_tracked_in_one_hierarchy(tmp_path: Path) -> None:
    plan = cgroups.Plan(
        {cgroups.MEMORY: (tmp_path / "memory", 1), cgroups.PIDS: (tmp_path / "pids", 1)}
    )
    for parent, _ in plan.parents.values():
        parent.mkdir()
    manager = cgroups.Manager(plan, prefix="vahana-w", life=procs.Life(1, 2))
    tracked = manager.create("t-a1", memory_bytes=0, processes=0)
    assert list(tracked.dirs) == [cgroups.PIDS]
    assert sorted(p.name for p in (tmp_path / "pids" / "vahana-w@1.2@t-a1").iterdir()) == []


def test_a_stray_is_kept_while_its_task_runs_and_ended_after() -> None:
    me, dead, living = procs.Life(10, 1), procs.Life(11, 1), procs.Life(12, 1)

    def verdict(marker: procs.Marker | None, running: set[str]) -> str:
        return reaper.judge(
            marker, worker_id="w", life=me, running=running, alive=lambda life: life == living
        )

    mine = procs.Marker("w", me, "t-a1")
    assert verdict(mine, {"t-a1"}) == reaper.KEEP
    assert verdict(mine, {"t-a2"}) == reaper.END  # its task has ended
    assert verdict(procs.Marker("w", dead, "t-a1"), set()) == reaper.END  # an earlier life's
    # Nothing of this worker's running tasks can be named: ended once no task runs.
    assert verdict(None, {"t-a1"}) == reaper.UNMARKED
    assert verdict(procs.Marker("other", me, "t-a1"), {"t-a1"}) == reaper.UNMARKED
    assert verdict(procs.Marker("w", living, "t-a1"), {"t-a1"}) == reaper.UNMARKED
