"""Reading where cgroups are (pure parsing), the launcher's arguments for joining a task's
cgroups, and the status a cgroup's counters give. The real hierarchy is exercised in
tests/integration/worker/test_cgroups.py."""

from __future__ import annotations

from pathlib import Path

from vahana_worker import cgroups, limits, procs

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 23 0:38 / /mnt/with\\040space rw - ext4 /dev/sda1 rw
"""
HYBRID_SELF = "9:name=systemd:/\n8:pids:/\n4:memory:/jobs/abc\n1:cpu,cpuacct:/\n0::/\n"
UNIFIED_MOUNTINFO = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_mountinfo_gives_each_hierarchy_with_its_version_and_controllers() -> None:
    mounts = cgroups.parse_mountinfo(HYBRID_MOUNTINFO)
    assert [(str(m.path), m.version, sorted(m.controllers)) for m in mounts] == [
        ("/sys/fs/cgroup/cpu", 1, []),
        ("/sys/fs/cgroup/memory", 1, ["memory"]),
        ("/sys/fs/cgroup/pids", 1, ["pids"]),
        ("/sys/fs/cgroup/unified", 2, []),
    ]


def test_proc_self_cgroup_maps_each_controller_and_the_unified_entry() -> None:
    own = cgroups.parse_self_cgroup(HYBRID_SELF)
    assert own["memory"] == "/jobs/abc" and own["pids"] == "/" and own[""] == "/"
    assert own["cpu"] == own["cpuacct"] == "/"


def test_no_cgroup_mount_means_no_task_cgroups_and_says_why() -> None:
    plan, why = cgroups.discover(mountinfo="", self_cgroup="")
    assert plan is None and why == "no cgroup hierarchy with memory or pids is mounted"


def test_an_unwritable_v1_hierarchy_is_not_used_and_named(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    mountinfo = f"35 31 0:32 / {missing} rw - cgroup cgroup rw,memory\n"
    plan, why = cgroups.discover(mountinfo=mountinfo, self_cgroup="4:memory:/\n")
    assert plan is None and f"{missing} is not writable" in why


def test_the_launcher_joins_the_task_s_cgroups_before_it_sets_limits() -> None:
    line = limits.command_line(
        ["bash", "-c", "true"],
        limits.Limits(cpu_seconds=5),
        cgroup_joins=["/cg/memory/t/tasks", "/cg/pids/t/tasks"],
    )
    args = line[line.index(limits.LAUNCHER) + 1 :]
    assert args == [
        "CGROUP=/cg/memory/t/tasks",
        "CGROUP=/cg/pids/t/tasks",
        "RLIMIT_CPU=5:6",
        "--",
        "bash",
        "-c",
        "true",
    ]


def test_a_cgroup_alone_still_goes_through_the_launcher() -> None:
    line = limits.command_line(["bash"], limits.Limits(), cgroup_joins=["/cg/t/tasks"])
    assert line[-3:] == ["CGROUP=/cg/t/tasks", "--", "bash"]


def test_the_cgroup_s_counters_decide_which_limit_was_hit() -> None:
    both = limits.Limits(memory_bytes=2**30, processes=10)
    assert limits.diagnose(137, "", both, frozenset({"memory"})) == (
        "hit its memory limit (1Gi for all its processes; the kernel killed one)"
    )
    assert limits.diagnose(1, "anything", both, frozenset({"pids"})) == (
        "hit its process limit (10 processes at once)"
    )
    assert limits.diagnose(0, "", both, frozenset({"memory"})) is None  # it coped
    assert limits.diagnose(137, "", limits.Limits(), frozenset({"memory"})) is None


def test_task_cgroup_names_stay_distinct_when_too_long_and_for_ids_made_safe() -> None:
    plan = cgroups.Plan({})
    life = procs.Life(4242, 98765)
    long_id = "w" * 240
    manager = cgroups.Manager(plan, prefix=f"vahana-{long_id}", life=life)
    first, second = manager._name("t" * 250 + "-a1"), manager._name("t" * 250 + "-a2")
    assert first != second and max(len(first), len(second)) <= cgroups.NAME_MAX
    # A long id is cut to a prefix with a digest, so the life stays whole in every name.
    assert first.split("@")[1] == "4242.98765"
    # Ids that differ only in characters made safe keep apart (a sweep must not cross over).
    slash = cgroups.Manager(plan, prefix="vahana-a/b", life=life)._name("t")
    underscore = cgroups.Manager(plan, prefix="vahana-a_b", life=life)._name("t")
    assert slash != underscore and underscore == "vahana-a_b@4242.98765@t"
    assert "@" not in slash.split("@")[0] and slash.startswith("vahana-a_b-")


def test_a_process_joins_v1_cgroups_by_their_tasks_file_and_v2_by_cgroup_procs() -> None:
    """In v1, "0" written to `tasks` moves the writing thread without the kernel's global
    lock (whose grace period cost ~13 ms per task); the joiners are single-threaded."""
    mixed = cgroups.TaskCgroup(
        {
            cgroups.MEMORY: (Path("/cg/memory/t"), 1),
            cgroups.PIDS: (Path("/cg/unified/t"), 2),
        }
    )
    assert mixed.join_files == ["/cg/memory/t/tasks", "/cg/unified/t/cgroup.procs"]
    assert cgroups.join_prefix(mixed.join_files).startswith(
        "{ echo 0 > /cg/memory/t/tasks && echo 0 > /cg/unified/t/cgroup.procs; }"
    )


def test_an_emptied_cgroup_of_a_task_without_limits_is_the_next_such_task_s(
    tmp_path: Path,
) -> None:
    """Directories stand in for a v1 pids hierarchy: `cgroup.procs` lists the members and
    `pids.events` the counters, as the kernel's files do."""
    manager = cgroups.Manager(cgroups.Plan({cgroups.PIDS: (tmp_path, 1)}), prefix="w")
    first = manager.create("t1", memory_bytes=0, processes=0)
    [(path, _)] = first.dirs.values()
    manager.done(first)
    assert manager.create("t2", memory_bytes=0, processes=0) is first  # no mkdir
    assert path.is_dir()

    busy = manager.create("t3", memory_bytes=0, processes=0)  # the spare is taken: a new one
    assert busy is not first
    (busy.dirs[cgroups.PIDS][0] / "cgroup.procs").write_text("4242\n")  # a process left in it
    counted = manager.create("t4", memory_bytes=0, processes=0)
    (counted.dirs[cgroups.PIDS][0] / "pids.events").write_text("max 1\n")  # a refused fork
    limited = manager.create("t5", memory_bytes=0, processes=10)
    assert not limited.tracking
    nested = manager.create("t8", memory_bytes=0, processes=0)
    (nested.dirs[cgroups.PIDS][0] / "escaped").mkdir()  # a task's own cgroup inside it
    for cgroup in (busy, counted, limited, nested):
        manager.done(cgroup)  # each removed (the stand-in files make rmdir fail: left on disk)
    assert manager.create("t6", memory_bytes=0, processes=0) not in (busy, counted, limited, nested)

    manager.done(first)
    manager.close()
    assert not path.exists()  # spares go with the manager
    manager.done(manager.create("t7", memory_bytes=0, processes=0))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith("t7")] == []  # not kept
