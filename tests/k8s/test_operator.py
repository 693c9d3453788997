"""The operator on a real API server, under its own RBAC, with Pods played by the fake kubelet.

Most tests share one operator (`shared_operator`), each in a namespace of its own; a test that
kills or restarts the operator, or starts it with other flags, has its own."""

from __future__ import annotations

import base64
import dataclasses
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vahana.core import tokens
from vahana.pools import credentials

from tests.integration.harness import pid_alive
from tests.k8s import namespaces, operator_process
from tests.k8s.controlplane import ControlPlane
from tests.k8s.kubelet import FakeKubelet
from tests.k8s.serviceaccount import kubeconfig_for_service_account
from tests.waiting import wait_until

pytestmark = pytest.mark.kubernetes
EXAMPLES = operator_process.ROOT / "deploy" / "examples"


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane) -> Path:
    control_plane.kubectl("create", "namespace", "vahana-system", check=False)
    return kubeconfig_for_service_account(
        control_plane, "vahana-system", "vahana", [operator_process.RBAC]
    )


@pytest.fixture
def operator(
    operator_kubeconfig: Path, namespace: str
) -> Iterator[operator_process.OperatorProcess]:
    """An operator of the test's own, watching its namespace: for a test that kills or
    restarts it (and for the modules that import this fixture)."""
    with tempfile.TemporaryDirectory(prefix="vh-op-") as state:
        process = operator_process.OperatorProcess(operator_kubeconfig, namespace, Path(state))
        process.start()
        try:
            yield process
        finally:
            process.stop()


@dataclasses.dataclass
class SharedOperator:
    """The module's operator and the namespaces made for the tests that share it."""

    process: operator_process.OperatorProcess
    namespaces: dict[str, str]
    """The namespace made for each test that uses it, by test id."""
    left: set[str]
    """Namespaces not deleted yet."""


@pytest.fixture(scope="module")
def module_operator(
    control_plane: ControlPlane, operator_kubeconfig: Path, request: pytest.FixtureRequest
) -> Iterator[SharedOperator]:
    """One operator for the tests of this module that use `shared_operator` (an operator
    starts in ~5 s): it watches the namespaces it starts with, so one is made ahead for each
    of those tests."""
    tests = [
        item
        for item in request.session.items
        if item.getparent(pytest.Module) is request.node and "shared_operator" in item.fixturenames
    ]
    made = {item.nodeid: namespaces.name_for(item.name) for item in tests}
    left: set[str] = set()
    try:
        for name in made.values():
            namespaces.create(control_plane, name)
            left.add(name)
        for name in made.values():
            namespaces.wait_ready(control_plane, name)
        first, *rest = made.values()
        with tempfile.TemporaryDirectory(prefix="vh-op-") as state:
            process = operator_process.OperatorProcess(
                operator_kubeconfig, first, Path(state), more_namespaces=tuple(rest)
            )
            try:
                process.start()
                yield SharedOperator(process, made, left)
            finally:
                process.stop()
    finally:
        for name in left:
            namespaces.delete(control_plane, name)


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace, deleted after; for a test of the shared operator, the one made for it
    (deleted while that operator runs: it sees its Tasks and WorkerPools go)."""
    shared: SharedOperator | None = None
    if "shared_operator" in request.fixturenames:
        shared = request.getfixturevalue("module_operator")
        name = shared.namespaces[request.node.nodeid]
    else:
        name = namespaces.name_for(request.node.name)
        namespaces.create(control_plane, name)
        namespaces.wait_ready(control_plane, name)
    yield name
    namespaces.delete(control_plane, name)
    if shared is not None:
        shared.left.discard(name)


@pytest.fixture
def shared_operator(
    module_operator: SharedOperator, namespace: str
) -> operator_process.OperatorProcess:
    """The module's operator, watching the test's namespace (with others' namespaces, one
    test at a time); tests that end or restart an operator use `operator`."""
    process = module_operator.process
    assert process.process is not None
    if process.process.poll() is not None:
        raise AssertionError(f"the shared operator exited: {process.log_text()[-3000:]}")
    return process


@pytest.fixture
def pods(control_plane: ControlPlane, namespace: str) -> Iterator[FakeKubelet]:
    path = f"{operator_process.VENV_BIN}:/usr/local/bin:/usr/bin:/bin"
    fake = FakeKubelet(control_plane, [namespace], extra_env={"PATH": path}).start()
    yield fake
    fake.stop()


def get(plane: ControlPlane, namespace: str, kind: str, name: str = "") -> Any:
    return plane.read(namespace, kind, name)


def phases(plane: ControlPlane, namespace: str) -> dict[str, str]:
    items = get(plane, namespace, "tasks")["items"]
    return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "") for i in items}


def apply(plane: ControlPlane, namespace: str, text: str) -> None:
    path = Path(tempfile.mkstemp(suffix=".yaml")[1])
    path.write_text(text)
    plane.kubectl("apply", "-n", namespace, "-f", str(path))
    path.unlink()


def task_yaml(name: str, command: str, **spec: Any) -> str:
    body = {
        "apiVersion": "vahana.dev/v1alpha1",
        "kind": "Task",
        "metadata": {"name": name},
        "spec": {"command": command, **spec},
    }
    return json.dumps(body) + "\n"


def kubernetes_pool(name: str, *, minimum: int = 0, maximum: int = 2, slots: int = 1) -> str:
    body = {
        "apiVersion": "vahana.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": {
            "type": "kubernetes",
            "minWorkers": minimum,
            "maxWorkers": maximum,
            "tasksPerWorker": slots,
            "idleTimeout": "1s",
            "resources": {"cpu": "1", "memory": "512Mi"},
            "kubernetes": {"image": "vahana:test"},
        },
    }
    return json.dumps(body) + "\n"


def test_the_examples_run_to_completion_and_kubectl_shows_tasks_and_workers(
    control_plane: ControlPlane, namespace: str, shared_operator: Any, pods: FakeKubelet
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES))
    expected = {"hello", "count", "greet-env", "copy-hostname", "small-resources", "exits-three"}
    done = wait_until(
        lambda: (
            lambda p: (
                p
                if set(p) >= expected and all(p[n] in ("Completed", "Failed") for n in expected)
                else None
            )
        )(phases(control_plane, namespace)),
        timeout=90,
        message="every example Task final",
    )
    assert {n: done[n] for n in expected} == {
        **dict.fromkeys(expected - {"exits-three"}, "Completed"),
        "exits-three": "Failed",
    }
    failed = get(control_plane, namespace, "task", "exits-three")["status"]
    assert failed["exitCode"] == 3

    tasks = control_plane.kubectl("get", "tasks", "-n", namespace).stdout
    for column in ("PHASE", "WORKER", "EXIT CODE", "ATTEMPTS", "AGE"):
        assert column in tasks
    workers = wait_until(
        lambda: (lambda out: out if "AVAILABLE" in out or "BUSY" in out else None)(
            control_plane.kubectl("get", "workers", "-n", namespace).stdout
        ),
        timeout=30,
        message="Worker objects listed",
    )
    for column in ("ID", "POOL", "STATUS", "ACTIVE", "CPU%", "MEM%", "LAST HEARTBEAT", "AGE"):
        assert column in workers


def test_a_kubernetes_pool_runs_tasks_in_jobs_and_its_deletion_removes_jobs_and_workers(
    control_plane: ControlPlane, namespace: str, shared_operator: Any, pods: FakeKubelet
) -> None:
    apply(control_plane, namespace, kubernetes_pool("jobs", maximum=2))
    apply(
        control_plane,
        namespace,
        "---\n".join(
            task_yaml(f"job-task-{i}", f"echo from-job-{i}", pool="jobs") for i in range(4)
        ),
    )
    wait_until(
        lambda: (lambda p: len(p) == 4 and set(p.values()) == {"Completed"})(
            phases(control_plane, namespace)
        ),
        timeout=90,
        message="tasks completed on Job workers",
    )
    jobs = get(control_plane, namespace, "jobs")["items"]
    assert 1 <= len(jobs) <= 2
    assert all(j["metadata"]["ownerReferences"][0]["kind"] == "WorkerPool" for j in jobs)
    worker_pods = set(pods.processes())
    assert worker_pods
    wait_until(
        lambda: get(control_plane, namespace, "workers")["items"],
        timeout=20,
        message="Worker objects",
    )

    control_plane.kubectl("delete", "workerpool", "jobs", "-n", namespace, "--wait=false")
    wait_until(
        lambda: not get(control_plane, namespace, "workers")["items"],
        timeout=60,
        message="Worker objects gone",
    )
    wait_until(
        lambda: not get(control_plane, namespace, "jobs")["items"],
        timeout=60,
        message="Jobs garbage-collected",
    )
    wait_until(
        lambda: get(control_plane, namespace, "workerpool", "jobs") is None,
        timeout=30,
        message="WorkerPool gone",
    )
    wait_until(
        lambda: not any(pid_alive(pid) for pid in pods.processes().values()),
        timeout=30,
        message="worker processes stopped",
    )


def test_deleting_a_running_task_stops_its_process_and_the_object_goes_away(
    control_plane: ControlPlane,
    namespace: str,
    shared_operator: Any,
    pods: FakeKubelet,
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "task.pid"
    apply(control_plane, namespace, kubernetes_pool("p", maximum=1))
    apply(
        control_plane,
        namespace,
        task_yaml("forever", f"echo $$ > {pid_file}; exec sleep 1000", pool="p"),
    )
    wait_until(
        lambda: pid_file.exists() and pid_file.read_text().strip(),
        timeout=60,
        message="task started",
    )
    pid = int(pid_file.read_text())
    control_plane.kubectl("delete", "task", "forever", "-n", namespace, "--wait=false")
    wait_until(lambda: not pid_alive(pid), timeout=20, message="task process stopped")
    wait_until(
        lambda: get(control_plane, namespace, "task", "forever") is None,
        timeout=20,
        message="Task object removed",
    )


def test_scale_down_never_kills_a_busy_worker(
    control_plane: ControlPlane, namespace: str, shared_operator: Any, pods: FakeKubelet
) -> None:
    apply(control_plane, namespace, kubernetes_pool("elastic", maximum=3))
    apply(
        control_plane,
        namespace,
        "---\n".join(
            [task_yaml("long", "sleep 6; echo long-done", pool="elastic")]
            + [task_yaml(f"short-{i}", "true", pool="elastic") for i in range(4)]
        ),
    )
    final = wait_until(
        lambda: (
            lambda p: (
                p if len(p) == 5 and all(v in ("Completed", "Failed") for v in p.values()) else None
            )
        )(phases(control_plane, namespace)),
        timeout=90,
        message="all tasks final",
    )
    assert set(final.values()) == {"Completed"}
    long = get(control_plane, namespace, "task", "long")["status"]
    assert long["attempt"] == 1 and "long-done" in long["outputTail"]
    # Idle workers are released (idleTimeout 1s) once the queue is empty.
    wait_until(
        lambda: len(get(control_plane, namespace, "jobs")["items"]) == 0,
        timeout=60,
        message="idle workers released",
    )


def test_a_restarted_operator_adopts_tasks_and_jobs_without_duplicates(
    control_plane: ControlPlane, namespace: str, operator: Any, pods: FakeKubelet
) -> None:
    apply(control_plane, namespace, kubernetes_pool("steady", minimum=2, maximum=2, slots=2))
    apply(
        control_plane,
        namespace,
        "---\n".join(
            task_yaml(f"r-{i}", f"sleep 0.{i % 4}; echo r-{i}", pool="steady") for i in range(20)
        ),
    )
    wait_until(
        lambda: sum(v == "Completed" for v in phases(control_plane, namespace).values()) >= 3,
        timeout=60,
        message="some tasks done",
    )
    jobs_before = {j["metadata"]["name"] for j in get(control_plane, namespace, "jobs")["items"]}
    operator.kill()
    operator.start()
    final = wait_until(
        lambda: (
            lambda p: (
                p
                if len(p) == 20 and all(v in ("Completed", "Failed") for v in p.values())
                else None
            )
        )(phases(control_plane, namespace)),
        timeout=120,
        message="all tasks final after the restart",
    )
    assert set(final.values()) == {"Completed"}
    jobs_after = {j["metadata"]["name"] for j in get(control_plane, namespace, "jobs")["items"]}
    assert jobs_after == jobs_before, "no duplicate Jobs after the restart"
    attempts = [
        get(control_plane, namespace, "task", f"r-{i}")["status"]["attempt"] for i in range(20)
    ]
    assert attempts == [1] * 20, "no task ran twice"


def _task_writes(plane: ControlPlane) -> int:
    """PATCH and PUT requests on tasks (any subresource) the API server has served so far."""
    return _writes(plane, "tasks", ("PATCH", "PUT"))


def _event_writes(plane: ControlPlane) -> int:
    """Events created or patched (kopf's and Vahana's) that the API server has served so far."""
    return _writes(plane, "events", ("POST", "PATCH"))


def _writes(plane: ControlPlane, resource: str, verbs: tuple[str, ...]) -> int:
    text = plane.rest.request("GET", "/metrics")[1].get("message", "")
    total = 0
    for line in text.splitlines():
        is_write = f'resource="{resource}"' in line and any(f'verb="{v}"' in line for v in verbs)
        if line.startswith("apiserver_request_total{") and is_write:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_200_tasks_applied_at_once_complete_with_bounded_api_writes(
    control_plane: ControlPlane, namespace: str, shared_operator: Any, pods: FakeKubelet
) -> None:
    count = 200
    apply(control_plane, namespace, kubernetes_pool("bulk", maximum=4, slots=4))
    before = _task_writes(control_plane)
    events_before = _event_writes(control_plane)
    apply(
        control_plane,
        namespace,
        "---\n".join(task_yaml(f"bulk-{i}", "true", pool="bulk") for i in range(count)),
    )
    wait_until(
        lambda: (lambda p: len(p) == count and set(p.values()) == {"Completed"})(
            phases(control_plane, namespace)
        ),
        timeout=240,
        interval=0.5,
        message=f"{count} tasks completed",
    )
    # The last status writes may still be in flight: wait until the count settles.
    settled = wait_until(
        lambda: (lambda a, b: a if a == b else None)(
            _task_writes(control_plane), _task_writes(control_plane)
        ),
        timeout=10,
        message="writes settled",
    )
    per_task = (settled - before) / count
    print(f"\noperator API writes per Task (PATCH/PUT on tasks, kopf included): {per_task:.2f}")
    assert per_task <= 8, per_task
    # Events: one per status write at most (plus a retry); kopf's own count too.
    events_per_task = (_event_writes(control_plane) - events_before) / count
    print(f"Event writes per Task (POST/PATCH on events, kopf included): {events_per_task:.2f}")
    assert events_per_task <= 4, events_per_task


def test_a_task_spec_cannot_change_after_creation(
    control_plane: ControlPlane, namespace: str, shared_operator: Any
) -> None:
    apply(control_plane, namespace, task_yaml("fixed", "echo one", pool="nowhere"))
    result = control_plane.kubectl(
        "patch",
        "task",
        "fixed",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"command": "echo two"}}',
        check=False,
    )
    assert result.returncode != 0
    assert "spec is immutable" in result.stderr


def test_of_two_replicas_only_one_acts_and_the_standby_takes_over(
    control_plane: ControlPlane, namespace: str, operator_kubeconfig: Path, pods: FakeKubelet
) -> None:
    with tempfile.TemporaryDirectory(prefix="vh-ha-") as shared:
        # Same store and port: the standby binds nothing until it holds the Lease.
        first = operator_process.OperatorProcess(
            operator_kubeconfig, namespace, Path(shared), name="first"
        )
        second = operator_process.OperatorProcess(
            operator_kubeconfig, namespace, Path(shared), port=first.port, name="second"
        )
        try:
            first.start()
            second.start(wait_serving=False)
            wait_until(
                lambda: "standby: waiting for lease" in second.log_text(),
                timeout=30,
                message="second replica on standby",
            )
            apply(control_plane, namespace, kubernetes_pool("ha", minimum=2, maximum=2, slots=2))
            apply(
                control_plane,
                namespace,
                "---\n".join(
                    task_yaml(f"ha-{i}", f"sleep 0.{i % 5}; echo ha-{i}", pool="ha")
                    for i in range(12)
                ),
            )
            wait_until(
                lambda: (
                    sum(v == "Completed" for v in phases(control_plane, namespace).values()) >= 2
                ),
                timeout=60,
                message="the leader runs tasks",
            )
            assert "holding lease" not in second.log_text()
            first.kill()
            wait_until(
                lambda: "leader: holding lease" in second.log_text(),
                timeout=30,
                message="the standby takes over",
            )
            final = wait_until(
                lambda: (
                    lambda p: (
                        p
                        if len(p) == 12 and all(v in ("Completed", "Failed") for v in p.values())
                        else None
                    )
                )(phases(control_plane, namespace)),
                timeout=120,
                message="all tasks final after the failover",
            )
            assert set(final.values()) == {"Completed"}
        finally:
            first.stop()
            second.stop()


def grant_on_secrets(plane: ControlPlane, namespace: str, name: str, verbs: list[str]) -> None:
    """Gives the operator's ServiceAccount `verbs` on Secrets of `namespace` (a Role named
    `name`), as the chart's rbac.readSshSecrets and auth.bootstrapSecretName do."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": verbs}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "vahana", "namespace": "vahana-system"}],
    }
    apply(plane, namespace, json.dumps(role) + "\n---\n" + json.dumps(binding))


def grant_when_asked(
    plane: ControlPlane, namespace: str, pool: str, chart_value: str, verbs: list[str]
) -> None:
    """Waits for the pool to report that the operator may not use Secrets, naming the chart
    value that grants it; then grants `verbs` on Secrets."""
    refusal = wait_until(
        lambda: _pool_status(plane, namespace, pool).get("lastError"),
        timeout=30,
        message="the Secret refusal reported",
    )
    assert chart_value in refusal
    grant_on_secrets(plane, namespace, f"{pool}-secrets", verbs)


def _pool_status(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    pool = get(plane, namespace, "workerpool", name)
    return (pool or {}).get("status") or {}


def test_workers_that_fail_to_start_are_reported_on_the_pool(
    control_plane: ControlPlane, namespace: str, shared_operator: Any, pods: FakeKubelet
) -> None:
    refused = json.loads(kubernetes_pool("refused", minimum=1, maximum=1))
    refused["spec"]["kubernetes"]["nodeSelector"] = {"not a valid key!": "x"}
    crashing = json.loads(kubernetes_pool("crashing", minimum=1, maximum=1))
    crashing["spec"]["heartbeatInterval"] = "0s"  # the worker refuses it and exits 2
    apply(control_plane, namespace, json.dumps(refused) + "\n---\n" + json.dumps(crashing))

    refusal = wait_until(
        lambda: _pool_status(control_plane, namespace, "refused").get("lastError"),
        timeout=30,
        message="the refused Job reported",
    )
    assert "creating Job" in refusal and "422" in refusal
    crash = wait_until(
        lambda: _pool_status(control_plane, namespace, "crashing").get("lastError"),
        timeout=60,
        message="the failed Job reported",
    )
    assert "failed" in crash
    ready = {c["type"]: c for c in _pool_status(control_plane, namespace, "refused")["conditions"]}
    assert ready["Ready"]["status"] == "False" and "last error" in ready["Ready"]["message"]


def test_a_baremetal_pool_reads_its_ssh_key_and_known_hosts_from_secrets(
    control_plane: ControlPlane,
    namespace: str,
    shared_operator: Any,
    sshd_server: Any,
    tmp_path: Path,
) -> None:
    for secret, key, path in (
        ("lab-key", "ssh-privatekey", sshd_server.key_file),
        ("lab-hosts", "known_hosts", sshd_server.known_hosts_file),
    ):
        control_plane.kubectl(
            "create", "secret", "generic", secret, "-n", namespace, f"--from-file={key}={path}"
        )
    pool = {
        "apiVersion": "vahana.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": "lab"},
        "spec": {
            "type": "baremetal",
            "minWorkers": 1,
            "maxWorkers": 1,
            "idleTimeout": "10m",
            "baremetal": {
                "hosts": [
                    {"host": "127.0.0.1", "port": sshd_server.port, "user": sshd_server.user}
                ],
                "sshKeySecret": "lab-key",
                "knownHostsSecret": "lab-hosts",
                "workingDir": str(tmp_path / "remote"),
            },
        },
    }
    apply(control_plane, namespace, json.dumps(pool))
    # The chart's default RBAC does not read Secrets: the pool says what to grant.
    grant_when_asked(control_plane, namespace, "lab", "rbac.readSshSecrets", ["get"])
    apply(control_plane, namespace, task_yaml("over-ssh", "echo over-ssh", pool="lab"))
    wait_until(
        lambda: phases(control_plane, namespace).get("over-ssh") == "Completed",
        timeout=90,
        message="a task on the ssh worker",
    )
    control_plane.kubectl("delete", "workerpool", "lab", "-n", namespace, "--wait=false")
    wait_until(
        lambda: get(control_plane, namespace, "workerpool", "lab") is None,
        timeout=60,
        message="pool removed",
    )


def test_with_worker_authentication_a_kubernetes_pool_gets_a_secret_of_its_own(
    control_plane: ControlPlane,
    namespace: str,
    operator_kubeconfig: Path,
    pods: FakeKubelet,
    tmp_path: Path,
) -> None:
    master = tmp_path / "bootstrap-token"
    master.write_text("k8s-master-secret\n")
    (tmp_path / "state").mkdir()
    process = operator_process.OperatorProcess(
        operator_kubeconfig,
        namespace,
        tmp_path / "state",
        extra_args=(f"--bootstrap-token-file={master}",),
    ).start()
    try:
        apply(control_plane, namespace, kubernetes_pool("authed", maximum=1))
        apply(
            control_plane,
            namespace,
            "---\n".join(task_yaml(f"authed-{i}", "echo ok", pool="authed") for i in range(2)),
        )
        # What the chart grants with auth.bootstrapSecretName; without it the pool says so.
        grant_when_asked(control_plane, namespace, "authed", "auth.bootstrapSecretName", ["create"])
        worker_jobs = wait_until(
            lambda: get(control_plane, namespace, "jobs")["items"], timeout=30, message="a Job"
        )
        wait_until(
            lambda: set(phases(control_plane, namespace).values()) == {"Completed"},
            timeout=90,
            message="tasks completed by workers that registered with the pool's secret",
        )
        expected = tokens.pool_secret("k8s-master-secret", f"{namespace}/authed")
        name = credentials.bootstrap_secret_name("authed", expected)
        secret = get(control_plane, namespace, "secret", name)
        assert base64.b64decode(secret["data"]["bootstrap-token"]).decode() == expected
        assert secret["metadata"]["ownerReferences"][0]["kind"] == "WorkerPool"
        job_text = json.dumps(worker_jobs)
        assert name in job_text  # the Pod reads it from the Secret
        assert "k8s-master-secret" not in job_text and expected not in job_text
        assert "k8s-master-secret" not in process.log_text() and expected not in process.log_text()
    finally:
        process.stop()
