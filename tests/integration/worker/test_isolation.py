"""Task isolation with real processes: a task past its memory, process, file-size or CPU-time
limit ends FAILED with a message naming the limit and the executor runs the next task normally;
paths in a task's spec cannot reach outside its sandbox (or the output directory); the task does
not see the worker's environment."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from vahana_worker import executor, limits, staging

pytestmark = pytest.mark.integration

NO_LIMITS = limits.Limits()

FORK_LOOP = (
    "python3 -c 'import os, time\n"
    "for _ in range(500):\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(60)\n"
    "        os._exit(0)\n'"
)


def run_task(
    work: Path,
    command: str,
    *,
    task_limits: limits.Limits = NO_LIMITS,
    inputs: tuple[tuple[str, str], ...] = (),
    outputs: tuple[tuple[str, str], ...] = (),
    output_root: Path | None = None,
    user: tuple[int, int] | None = None,
    task_id: str = "iso",
) -> executor.Result:
    spec = executor.TaskSpec(
        task_id=task_id,
        attempt=1,
        command=command,
        timeout=60,
        inputs=inputs,
        outputs=outputs,
        limits=task_limits,
    )
    return executor.TaskRun(
        spec,
        working_dir=work,
        output_limit=8192,
        kill_grace=0.5,
        output_root=output_root,
        user=user,
    ).run()


def assert_next_task_runs(work: Path) -> None:
    """The executor (and the worker around it) lives on: a plain task right after completes."""
    result = run_task(work, "echo still here", task_id="after")
    assert result.outcome is executor.Outcome.COMPLETED, result.message
    assert result.output_tail == "still here\n"


def test_memory_limit(tmp_path: Path) -> None:
    result = run_task(
        tmp_path,
        'python3 -c "x = bytearray(512 * 1024 * 1024)"',
        task_limits=limits.Limits(memory_bytes=200 * 2**20),
    )
    assert result.outcome is executor.Outcome.FAILED
    assert result.failure_kind is executor.FailureKind.TASK_ERROR
    assert "hit its memory limit (200Mi" in result.message, result.message
    assert "MemoryError" in result.output_tail
    assert_next_task_runs(tmp_path)


def test_without_a_limit_the_same_allocation_succeeds(tmp_path: Path) -> None:
    result = run_task(tmp_path, 'python3 -c "x = bytearray(512 * 1024 * 1024)"')
    assert result.outcome is executor.Outcome.COMPLETED, result.message


def test_file_size_limit(tmp_path: Path) -> None:
    result = run_task(
        tmp_path,
        "dd if=/dev/zero of=big.bin bs=1M count=10",
        task_limits=limits.Limits(file_size_bytes=2**20),
    )
    assert result.outcome is executor.Outcome.FAILED
    assert result.message.startswith("exceeded its file-size limit (1Mi)"), result.message
    assert_next_task_runs(tmp_path)


def test_cpu_time_limit(tmp_path: Path) -> None:
    result = run_task(tmp_path, "while :; do :; done", task_limits=limits.Limits(cpu_seconds=1))
    assert result.outcome is executor.Outcome.FAILED
    assert result.message.startswith("exceeded its cpu-time limit (1s)"), result.message
    assert_next_task_runs(tmp_path)


def test_open_files_limit(tmp_path: Path) -> None:
    command = "python3 -c \"[open('f%d' % i, 'w') for i in range(100)]\""
    result = run_task(tmp_path, command, task_limits=limits.Limits(open_files=20))
    assert result.outcome is executor.Outcome.FAILED
    assert result.message.startswith("hit its open-files limit (20)"), result.message


@pytest.fixture
def nobody_work() -> Iterator[tuple[Path, tuple[int, int]]]:
    """A working directory the `nobody` user can reach, and its (uid, gid).

    RLIMIT_NPROC counts every process of a user id and is not enforced for root, so the fork
    test runs its task as `nobody` (a root worker with --task-user), which must be possible.
    """
    if os.geteuid() != 0:
        pytest.skip(
            "RLIMIT_NPROC counts every process of the user id and a non-root worker cannot "
            "run a task as another user: the process-limit test needs root (runs it as nobody)"
        )
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' to run the fork test's task as")
    work = Path(tempfile.mkdtemp(prefix="vahana-iso-"))
    work.chmod(0o755)
    try:
        yield work, (entry.pw_uid, entry.pw_gid)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_process_limit(nobody_work: tuple[Path, tuple[int, int]]) -> None:
    work, user = nobody_work
    result = run_task(
        work, FORK_LOOP, task_limits=limits.Limits(processes=50), user=user, task_id="forks"
    )
    assert result.outcome is executor.Outcome.FAILED
    assert result.message.startswith("hit its process limit (50)"), result.message
    assert "Resource temporarily unavailable" in result.output_tail
    # The forked sleepers went with the task's process group.
    leftover = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _owned_by(p, user[0])]
    assert all(not _is_sleeper(p) for p in leftover)
    assert_next_task_runs(work)


def test_task_user_owns_its_sandbox(nobody_work: tuple[Path, tuple[int, int]]) -> None:
    work, user = nobody_work
    result = run_task(work, "id -u; touch made-here && echo ok", user=user)
    assert result.outcome is executor.Outcome.COMPLETED, result.message + result.output_tail
    assert result.output_tail == f"{user[0]}\nok\n"


def _owned_by(proc: Path, uid: int) -> bool:
    try:
        return proc.stat().st_uid == uid
    except FileNotFoundError:
        return False


def _is_sleeper(proc: Path) -> bool:
    try:
        state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        return state not in ("Z", "X") and b"time.sleep" in (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


# -- paths -------------------------------------------------------------------------------------


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A would-be target outside the sandbox and the output directory; must never appear."""
    return tmp_path / "outside" / "passwd"


@pytest.mark.parametrize(
    ("destination", "reason"),
    [
        ("../../etc/passwd", "'..' is not allowed"),
        ("__VICTIM__", "absolute paths are not allowed"),
    ],
)
def test_input_destination_confined(
    tmp_path: Path, victim: Path, destination: str, reason: str
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("payload\n")
    destination = destination.replace("__VICTIM__", str(victim))
    marker = tmp_path / "ran"
    result = run_task(tmp_path / "work", f"touch {marker}", inputs=((str(source), destination),))
    assert result.outcome is executor.Outcome.FAILED
    assert result.failure_kind is executor.FailureKind.STAGING
    assert reason in result.message and destination in result.message, result.message
    assert not marker.exists(), "the command must not run after a staging error"
    assert not victim.exists()


def test_input_destination_through_an_escaping_symlink(tmp_path: Path, victim: Path) -> None:
    """A link in the sandbox leading out (inputs are copied with links followed, so only
    something else could have put it there) is not followed by a later input."""
    source = tmp_path / "in.txt"
    source.write_text("payload\n")
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    victim.parent.mkdir()
    (sandbox / "escape").symlink_to(victim.parent, target_is_directory=True)
    with pytest.raises(staging.StagingError, match="outside the sandbox through a symlink"):
        staging.stage_input(sandbox, str(source), "escape/passwd")
    assert not victim.exists()


def test_input_directory_links_are_copied_as_content(tmp_path: Path, victim: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    victim.parent.mkdir()
    (data / "escape").symlink_to(victim.parent, target_is_directory=True)
    result = run_task(
        tmp_path / "work",
        "test -d data/escape && ! test -L data/escape && echo copied",
        inputs=((str(data), "data"),),
    )
    assert result.outcome is executor.Outcome.COMPLETED, result.message + result.output_tail
    assert not victim.exists()


@pytest.mark.parametrize(
    ("command", "source", "reason"),
    [
        ("ln -s /etc/passwd leak", "leak", "outside the sandbox through a symlink"),
        ("mkdir d && ln -s /etc d/leak && echo x > d/ok", "d", "'d/leak' is a symlink"),
        ("true", "../../etc/passwd", "'..' is not allowed"),
        ("true", "/etc/passwd", "absolute paths are not allowed"),
    ],
)
def test_output_source_confined(tmp_path: Path, command: str, source: str, reason: str) -> None:
    outputs_dir = tmp_path / "outputs"
    result = run_task(
        tmp_path / "work", command, outputs=((source, "got"),), output_root=outputs_dir
    )
    assert result.outcome is executor.Outcome.FAILED
    assert result.failure_kind is executor.FailureKind.STAGING
    assert reason in result.message, result.message
    assert not (outputs_dir / "got").exists()


@pytest.mark.parametrize(
    ("destination", "reason"),
    [
        ("../../outside/passwd", "'..' is not allowed"),
        ("__VICTIM__", "absolute paths must lie inside the worker's output directory"),
        ("__VICTIM_URL__", "absolute paths must lie inside the worker's output directory"),
        ("escape/passwd", "leads outside the output directory through a symlink"),
    ],
)
def test_output_destination_confined(
    tmp_path: Path, victim: Path, destination: str, reason: str
) -> None:
    outputs_dir = tmp_path / "outputs"
    outputs_dir.mkdir()
    victim.parent.mkdir()
    (outputs_dir / "escape").symlink_to(victim.parent, target_is_directory=True)
    destination = destination.replace("__VICTIM_URL__", victim.as_uri())
    destination = destination.replace("__VICTIM__", str(victim))
    result = run_task(
        tmp_path / "work",
        "echo secret > result.txt",
        outputs=(("result.txt", destination),),
        output_root=outputs_dir,
    )
    assert result.outcome is executor.Outcome.FAILED
    assert result.failure_kind is executor.FailureKind.STAGING
    assert reason in result.message and destination in result.message, result.message
    assert not victim.exists()
    assert list(victim.parent.iterdir()) == []


def test_output_destinations_inside_the_output_directory_work(tmp_path: Path) -> None:
    outputs_dir = tmp_path / "outputs"
    result = run_task(
        tmp_path / "work",
        "echo one > a.txt; mkdir d; ln -s ../a.txt d/inner; echo two > d/b.txt",
        outputs=(("a.txt", "sub/a.txt"), ("d", str(outputs_dir / "tree") + "/")),
        output_root=outputs_dir,
    )
    assert result.outcome is executor.Outcome.COMPLETED, result.message
    assert (outputs_dir / "sub" / "a.txt").read_text() == "one\n"
    assert (outputs_dir / "tree" / "d" / "b.txt").read_text() == "two\n"
    assert (outputs_dir / "tree" / "d" / "inner").read_text() == "one\n"


# -- environment -------------------------------------------------------------------------------


def test_task_does_not_see_the_workers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAHANA_TEST_SECRET", "hunter2")
    monkeypatch.setenv("SERVER_ADDRESS", "scheduler:50051")
    spec = executor.TaskSpec(
        task_id="env", attempt=1, command="env", timeout=30, environment={"MINE": "yes"}
    )
    run = executor.TaskRun(
        spec, working_dir=tmp_path, output_limit=65536, base_env={"SITE": "given"}
    )
    result = run.run()
    assert result.outcome is executor.Outcome.COMPLETED, result.message
    seen = dict(line.split("=", 1) for line in result.output_tail.splitlines() if "=" in line)
    assert "hunter2" not in result.output_tail and "SERVER_ADDRESS" not in seen
    assert seen["MINE"] == "yes" and seen["SITE"] == "given"
    assert seen["TASK_ID"] == "env" and seen["WORKING_DIR"] == str(run.sandbox)
    assert seen["HOME"] == str(run.sandbox) and seen["TMPDIR"] == str(run.sandbox / "tmp")
    assert seen["PATH"] == executor.MINIMAL_PATH and seen["LANG"] == "C.UTF-8"
    assert seen["VAHANA_TASK"] == str(run.marker)  # how the task's processes are found
    allowed = {"MINE", "SITE", "TASK_ID", "WORKING_DIR", "HOME", "TMPDIR", "PATH", "LANG"}
    allowed.add("VAHANA_TASK")
    assert set(seen) - allowed <= {"PWD", "SHLVL", "_"}  # what bash itself adds


def test_a_task_user_gets_only_inputs_it_could_read_itself(
    nobody_work: tuple[Path, tuple[int, int]],
) -> None:
    work, user = nobody_work
    secret = work / "root-only.key"
    secret.write_text("do not copy\n")
    secret.chmod(0o600)  # root's: the root worker can read it, nobody cannot
    public = work / "public.txt"
    public.write_text("fine\n")
    public.chmod(0o644)
    refused = run_task(
        work, "cat stolen", user=user, inputs=((str(secret), "stolen"),), task_id="steal"
    )
    assert refused.outcome == executor.Outcome.FAILED
    assert "may not read" in refused.message
    allowed = run_task(
        work, "cat shared", user=user, inputs=((str(public), "shared"),), task_id="share"
    )
    assert allowed.outcome == executor.Outcome.COMPLETED and "fine" in allowed.output_tail


PROBE = """
import importlib.util, os, subprocess, sys
spec = importlib.util.spec_from_file_location("linux", sys.argv[1])
linux = importlib.util.module_from_spec(spec)
spec.loader.exec_module(linux)
if sys.argv[2] == "protected":
    assert linux.protect_secrets()
# A task of the same user reading its parent's environment, as `cat /proc/$PPID/environ`.
task = subprocess.run(["cat", f"/proc/{os.getpid()}/environ"], capture_output=True)
print(b"s3cret-in-the-worker" in task.stdout)
"""


@pytest.mark.parametrize("mode", ["protected", "unprotected"])
def test_a_task_of_the_workers_user_cannot_read_the_workers_environment(mode: str) -> None:
    """The worker's secrets (bootstrap secret, token) live in its environment and memory;
    tasks run as the same user by default. Run as an unprivileged user: root reads anyway."""
    module = Path(__file__).resolve().parents[3] / "worker" / "vahana_worker" / "linux.py"
    with tempfile.TemporaryDirectory() as shared:
        os.chmod(shared, 0o755)
        copy = Path(shared) / "linux.py"
        copy.write_text(module.read_text())
        command = ["/usr/bin/python3", "-c", PROBE, str(copy), mode]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
        # In the environment it starts with, as the worker's VAHANA_WORKER_BOOTSTRAP_TOKEN.
        env = {"PATH": "/usr/bin:/bin", "PROBE_SECRET": "s3cret-in-the-worker"}
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=60, check=True, env=env
        )
    assert done.stdout.strip() == ("False" if mode == "protected" else "True")
