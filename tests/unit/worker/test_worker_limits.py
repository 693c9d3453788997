"""Task limits without processes: which limit a failure hit (a pure function of exit code and
output), the launcher's command line, defaults from flags and the protocol."""

from __future__ import annotations

import dataclasses
import signal

import pytest
from vahana_worker import limits, messages, settings
from vahana_worker.proto import worker_pb2 as pb

ALL = limits.Limits(
    cpu_seconds=10,
    memory_bytes=200 * 2**20,
    processes=50,
    open_files=64,
    file_size_bytes=2**20,
)


@pytest.mark.parametrize(
    ("code", "output", "expected"),
    [
        (128 + signal.SIGXCPU, "", "exceeded its cpu-time limit (10s)"),
        (1, "bash: line 1: 42 CPU time limit exceeded (core dumped) ./busy", "exceeded its cpu"),
        (128 + signal.SIGXFSZ, "", "exceeded its file-size limit (1Mi)"),
        (1, "dd: error writing 'big': File too large", "exceeded its file-size limit (1Mi)"),
        (1, "Traceback ...\nMemoryError\n", "hit its memory limit (200Mi of address space)"),
        (134, "terminate called after throwing an instance of 'std::bad_alloc'", "hit its memory"),
        (1, "bash: fork: Cannot allocate memory", "hit its memory limit"),
        (1, "BlockingIOError: [Errno 11] Resource temporarily unavailable", "hit its process"),
        (254, "bash: fork: retry: Resource temporarily unavailable", "hit its process limit (50)"),
        (1, "OSError: [Errno 24] Too many open files: 'f63'", "hit its open-files limit (64)"),
    ],
)
def test_diagnose_names_the_limit(code: int, output: str, expected: str) -> None:
    found = limits.diagnose(code, output, ALL)
    assert found is not None and found.startswith(expected), found


def test_the_last_message_wins() -> None:
    output = "warning: Resource temporarily unavailable, retrying\nMemoryError\n"
    assert (limits.diagnose(1, output, ALL) or "").startswith("hit its memory limit")


@pytest.mark.parametrize(
    ("code", "output", "set_limits"),
    [
        (0, "MemoryError", ALL),  # handled it and succeeded
        (1, "MemoryError", limits.Limits()),  # no memory limit was set: not ours
        (128 + signal.SIGXCPU, "", limits.Limits(memory_bytes=1)),
        (3, "plain failure", ALL),
        (137, "", ALL),  # SIGKILL alone says nothing
    ],
)
def test_diagnose_blames_no_limit_it_cannot_explain(
    code: int, output: str, set_limits: limits.Limits
) -> None:
    assert limits.diagnose(code, output, set_limits) is None


def test_launcher_command_line() -> None:
    argv = ["bash", "-c", "echo hi"]
    assert limits.command_line(argv, limits.Limits()) == argv
    wrapped = limits.command_line(argv, ALL, user=(65534, 65534), python="/py")
    assert wrapped[:4] == ["/py", "-I", "-S", "-c"]
    split = wrapped.index("--")
    assert wrapped[split + 1 :] == argv
    assert wrapped[5:split] == [
        "USER=65534:65534",
        "RLIMIT_CPU=10:11",  # SIGXCPU at the soft limit before SIGKILL at the hard one
        f"RLIMIT_AS={200 * 2**20}",
        "RLIMIT_NPROC=50",
        "RLIMIT_NOFILE=64",
        f"RLIMIT_FSIZE={2**20}",
    ]
    compile(limits.LAUNCHER, "launcher", "exec")


def test_task_limits_over_worker_defaults() -> None:
    task = limits.Limits(memory_bytes=5)
    defaults = limits.Limits(memory_bytes=9, processes=7)
    assert task.over(defaults) == limits.Limits(memory_bytes=5, processes=7)
    assert not limits.Limits().any and task.any
    assert task.over(limits.Limits()) == task


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(limits.Limits)])
def test_any_limit_counts(field: str) -> None:
    assert limits.Limits(**{field: 1}).any


def test_spec_from_task_fills_in_the_workers_defaults() -> None:
    task = pb.Task(id="t", command="true", limits=pb.ResourceLimits(memory_bytes=100))
    defaults = limits.Limits(memory_bytes=1, cpu_seconds=30)
    spec = messages.spec_from_task(task, default_timeout=60.0, default_limits=defaults)
    assert spec.limits == limits.Limits(memory_bytes=100, cpu_seconds=30)
    plain = messages.spec_from_task(pb.Task(id="t", command="true"), default_timeout=60.0)
    assert plain.limits == limits.Limits()


def test_limit_flags_and_environment() -> None:
    parser_flags = {
        "limit_cpu_time": "1m30s",
        "limit_memory": "2Gi",
        "limit_processes": "100",
        "task_env": ["PATH=/opt/bin:/bin"],
    }
    env = {"VAHANA_WORKER_LIMIT_FILE_SIZE": "10Mi", "VAHANA_WORKER_LIMIT_OPEN_FILES": "256"}
    config = settings.load(parser_flags, env)
    assert config.task_limits == limits.Limits(
        cpu_seconds=90,
        memory_bytes=2 * 2**30,
        processes=100,
        open_files=256,
        file_size_bytes=10 * 2**20,
    )
    assert config.task_env == {"PATH": "/opt/bin:/bin"}
    assert settings.load({}, {}).task_limits == limits.Limits()


def test_bad_limit_settings_name_their_field() -> None:
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({"limit_processes": "-1", "task_user": "no-such-user-here"}, {})
    assert any(e.startswith("limit_processes:") for e in caught.value.errors)
    assert any(e.startswith("task_user: no such user") for e in caught.value.errors)
