"""Dependencies with the real scheduler process and real workers: `vahana run -f` runs a
pipeline file in order (a failure ends its dependents UPSTREAM_FAILED naming it, the other
branch still runs; a cycle or an unknown name refuses the file naming it); through a server,
afterany, sameIndex, the pending reason, and a restart that neither loses nor releases early
a dependent."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2 as pb

from tests.integration import harness
from tests.integration.conftest import WorkerFactory
from tests.integration.test_cli import vahana
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]
TASK = "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def pipeline(tmp_path: Path, log: Path, *, b_exit: int = 0, d_extra: str = "") -> Path:
    """The diamond a → b, c → d, last task first in the file; each appends its name to `log`
    (a only after a pause, so that a task that did not wait for it would come first)."""
    tasks = [
        ("d", f"{{command: 'echo d >> {log}', dependsOn: [b, c]{d_extra}}}"),
        ("c", f"{{command: 'echo c >> {log}', dependsOn: [a]}}"),
        ("b", f"{{command: 'echo b >> {log}; exit {b_exit}', dependsOn: [a]}}"),
        ("a", f"{{command: 'sleep 0.5; echo a >> {log}'}}"),
    ]
    path = tmp_path / "pipeline.yaml"
    path.write_text("---\n".join(TASK.format(name=n, spec=s) for n, s in tasks))
    return path


def run(path: Path) -> tuple[int, str]:
    result = vahana("run", "-f", str(path), "--workers=2", "--tasks-per-worker=2", timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_run_a_diamond_in_order(tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    code, output = run(pipeline(tmp_path, log))
    assert code == 0, output[-3000:]
    order = log.read_text().split()
    assert order[0] == "a" and order[-1] == "d" and sorted(order[1:3]) == ["b", "c"], order


def test_run_with_b_failing_ends_d_upstream_failed_and_c_still_runs(tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    code, output = run(pipeline(tmp_path, log, b_exit=3))
    assert code == 1, output[-3000:]
    assert sorted(log.read_text().split()) == ["a", "b", "c"]  # d never ran
    rows = {line.split()[0]: line for line in output.splitlines() if line.strip()}
    assert "UPSTREAM_FAILED" in rows["d"] and "b ended FAILED" in rows["d"], output[-3000:]
    assert "COMPLETED" in rows["c"]


def test_run_with_afterany_lets_d_run_after_a_failed_b(tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    path = pipeline(tmp_path, log, b_exit=3, d_extra=", dependencyCondition: afterany")
    code, output = run(path)
    assert code == 1, output[-3000:]  # b failed
    assert log.read_text().split()[-1] == "d"


def test_run_refuses_a_cycle_and_an_unknown_name_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(
        TASK.format(name="left", spec="{command: 'true', dependsOn: [right]}")
        + "---\n"
        + TASK.format(name="right", spec="{command: 'true', dependsOn: [left]}")
        + "---\n"
        + TASK.format(name="z", spec="{command: 'true', dependsOn: [ghost]}")
    )
    code, output = run(path)
    assert code == 2, output
    assert "cycle: left → right → left" in output
    assert "no task named ghost" in output
    assert "nothing was submitted" in output


def test_run_the_example_pipeline() -> None:
    code, output = run(REPOSITORY / "deploy" / "examples" / "pipeline.yaml")
    assert code == 0, output[-3000:]
    assert "clean-up" in output


def submission(name: str, command: str, *after: str, **fields: object) -> tasks_pb.TaskSubmission:
    return tasks_pb.TaskSubmission(
        spec=pb.Task(name=name, command=command),
        depends_on=[tasks_pb.Dependency(name=n) for n in after],
        **fields,  # type: ignore[arg-type]
    )


def test_a_server_refuses_a_cycle_naming_it(client: harness.Client) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        client.submit(submission("p", "true", "q"), submission("q", "true", "p"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cycle: p → q → p" in str(refused.value.details())


def test_same_index_arrays_run_element_wise(
    client: harness.Client, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker("w", max_tasks=4)
    ups = [
        submission(f"up[{i}]", f"exit {1 if i == 1 else 0}", array="up", index=i) for i in range(3)
    ]
    downs = [
        tasks_pb.TaskSubmission(
            spec=pb.Task(name=f"down[{i}]", command="true"),
            depends_on=[tasks_pb.Dependency(name="up", same_index=True)],
            array="down",
            index=i,
        )
        for i in range(3)
    ]
    ids = client.submit(*downs, *ups)
    final = {pb.COMPLETED, pb.FAILED, pb.UPSTREAM_FAILED}
    ended = wait_until(
        lambda: (lambda got: got if all(t.status in final for t in got) else None)(
            [client.get(i) for i in ids]
        ),
        timeout=60,
        message="both arrays to end",
    )
    statuses = [pb.TaskStatus.Name(t.status) for t in ended[:3]]
    assert statuses == ["COMPLETED", "UPSTREAM_FAILED", "COMPLETED"]
    assert "up[1] ended FAILED" in ended[1].message


def test_a_restart_neither_loses_nor_releases_a_dependent(
    client: harness.Client,
    scheduler: harness.SchedulerProcess,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    gate = tmp_path / "go"
    start_worker("w", max_tasks=2)
    a, d = client.submit(
        submission("a", f"while [ ! -e {gate} ]; do sleep 0.05; done"),
        submission("d", "true", "a"),
    )
    wait_until(lambda: client.status(a) == pb.RUNNING, timeout=30, message="a to run")
    assert client.get(d).pending_reason == "waiting for a"
    scheduler.stop()
    scheduler.start()
    again = harness.Client(scheduler.address)
    try:
        held = again.get(d)
        assert held.status == pb.PENDING and held.pending_reason == "waiting for a"
        assert [dep.name for dep in held.depends_on] == ["a"]
        gate.touch()
        wait_until(lambda: again.status(d) == pb.COMPLETED, timeout=60, message="d to run")
        assert again.get(a).status == pb.COMPLETED
        assert again.get(d).started_at.ToNanoseconds() >= again.get(a).finished_at.ToNanoseconds()
    finally:
        again.close()
