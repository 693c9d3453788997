"""A fake kubelet: runs the Pods of a test's namespaces as local processes and reports on them.

A `tests.k8s.node.Node` (watch, bind to `vahana-fake-node`, status, deletion) whose runtime
runs the FIRST container's `command` + `args` as a local process group and reports Running,
then Succeeded/Failed with the exit code, so the real Job controller completes or fails the Job.
Deleting the Pod sends SIGTERM to the process group, waits the grace period, then SIGKILL.
Fast, and blind to images, security contexts and limits: `tests.k8s.podman_kubelet` runs Pods
as real containers.

What the process gets:
- executable: `command[0]` (or `args[0]` without command) resolved on PATH; `$(VAR)` references
  in command/args are expanded from the container env as Kubernetes does (`$$` is a literal `$`).
- environment: PATH, HOME and LANG of the test process (tests put .venv/bin first on PATH, so
  `vahana-worker` resolves), plus `extra_env`, plus the container's `env`: `value`, and
  `valueFrom` fieldRef (metadata.name/namespace/uid, metadata.labels['k'] and
  metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.podIP and
  status.hostIP, both 127.0.0.1), configMapKeyRef and secretKeyRef; anything else is logged and
  skipped. `envFrom` is not supported.
- emptyDir volumes: each mount path is mapped to a per-pod temp dir. Rule: a command/args element,
  env value or workingDir that equals a mount path or starts with `<mountPath>/`, or has the form
  `<anything>=<such a path>` (e.g. `--dir=/work/x`), is rewritten to the temp dir. Paths inside
  other strings (e.g. a `bash -c` script) are not rewritten.
- cwd: the workingDir when it is under an emptyDir mount, else a fresh per-pod dir; stdout and
  stderr go to a per-pod log file (`log_of(pod_name)`).
Other containers, init containers, probes, restartPolicy OnFailure, resources: ignored.
The command line is built by `tests.k8s.container.prepare`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from tests.k8s import container as container_command
from tests.k8s.controlplane import ControlPlane
from tests.k8s.node import Node, PodRun, now

log = logging.getLogger(__name__)

NODE_NAME = "vahana-fake-node"


class FakeKubelet(Node):
    """Plays the kubelet for Pods in `namespaces` with local processes; start(), stop()."""

    def __init__(
        self,
        plane: ControlPlane,
        namespaces: Sequence[str],
        *,
        label_selector: str | None = None,
        node_name: str = NODE_NAME,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            plane, namespaces, label_selector=label_selector, node_name=node_name,
            prefix="vh-kl-",
        )  # fmt: skip
        self.extra_env = dict(extra_env or {})

    def pid_of(self, pod_name: str) -> int | None:
        """The pid of the live process of that Pod, None if not started or ended."""
        return self.processes().get(pod_name)

    def processes(self) -> dict[str, int]:
        """Live processes by Pod name."""
        with self._lock:
            return {
                run.name: process.pid
                for run in self._runs.values()
                if (process := _process(run)) is not None and process.poll() is None
            }

    def log_of(self, pod_name: str) -> str:
        """What the Pod's process wrote to stdout and stderr so far."""
        with self._lock:
            runs = [run for run in self._runs.values() if run.name == pod_name]
        log_path = runs[-1].workdir / "container.log" if runs else None
        if log_path is None or not log_path.exists():
            return ""
        return log_path.read_text(errors="replace")

    # -- the runtime -------------------------------------------------------------------------------
    def _run_pod(self, run: PodRun, pod: dict[str, Any]) -> None:
        container = pod["spec"]["containers"][0]
        try:
            argv, env, cwd = container_command.prepare(
                pod, run.workdir, node_name=self.node_name, extra_env=self.extra_env, rest=self.rest
            )
            with open(run.workdir / "container.log", "wb") as output:
                process = subprocess.Popen(
                    argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
        except Exception as error:
            log.warning("fake kubelet: cannot start %s: %s", run.name, error)
            terminated = {"exitCode": 128, "reason": "StartError", "message": str(error)}
            self.report(run, "Failed", [_status(container, {"terminated": terminated})],
                        ready=False)  # fmt: skip
            return
        with self._lock:
            run.runtime["process"] = process
            kill_now = run.terminating
        log.info("fake kubelet: %s runs %s as pid %s", run.name, argv, process.pid)
        if kill_now:
            _signal_group(process, signal.SIGKILL)
        running = {"running": {"startedAt": run.started_at}}
        self.report(run, "Running", [_status(container, running, ready=True)], ready=True)
        code = process.wait()
        _signal_group(process, signal.SIGKILL)  # the container ends with its main process
        exit_code = code if code >= 0 else 128 - code
        terminated = {
            "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": run.started_at, "finishedAt": now(),
        }  # fmt: skip
        phase = "Succeeded" if exit_code == 0 else "Failed"
        self.report(run, phase, [_status(container, {"terminated": terminated})], ready=False)

    def _kill(self, run: PodRun) -> None:
        process = _process(run)
        if process is not None and process.poll() is None:
            threading.Thread(
                target=_terminate, args=(process, run.grace), name=f"kill-{run.name}",
                daemon=True,
            ).start()  # fmt: skip

    def _stop_runtime(self, runs: list[PodRun], timeout: float) -> None:
        """SIGTERM to every process started, then SIGKILL after `timeout`."""
        processes = [p for run in runs if (p := _process(run)) is not None]
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
            _signal_group(process, signal.SIGKILL)  # stragglers of the group


def _process(run: PodRun) -> subprocess.Popen[bytes] | None:
    return run.runtime.get("process")


def _status(
    container: dict[str, Any], state: dict[str, Any], *, ready: bool = False
) -> dict[str, Any]:
    return {
        "name": container["name"], "image": container.get("image", ""), "imageID": "",
        "ready": ready, "started": ready, "restartCount": 0, "state": state,
    }  # fmt: skip


def _signal_group(process: subprocess.Popen[bytes], number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, number)


def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the group, up to `grace` seconds for the process to exit, then SIGKILL."""
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        log.info("fake kubelet: pid %s outlived its %ss grace; SIGKILL", process.pid, grace)
    _signal_group(process, signal.SIGKILL)
