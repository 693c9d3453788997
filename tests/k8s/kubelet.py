"""A fake kubelet: runs the Pods of a test's namespaces as local processes and reports on them.

The envtest control plane has no scheduler and no kubelet. `FakeKubelet` watches Pods (optionally
by label selector) in the given namespaces and takes every Pod with no `spec.nodeName`: it binds
it to its node (`vahana-fake-node`, through the pods/binding subresource, as a scheduler would),
runs the FIRST container's `command` + `args` as a local process group and writes the Pod's
status subresource (Running, then Succeeded/Failed with the exit code) so the real Job controller
completes or fails the Job. Deleting the Pod (watch DELETED or deletionTimestamp set) sends
SIGTERM to the process group, waits the grace period (the Pod's deletionGracePeriodSeconds, else
terminationGracePeriodSeconds, default 30, at most 30), then SIGKILL; once the process is gone a
Pod being deleted is deleted again with gracePeriodSeconds=0, confirming it as a kubelet does.

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
import datetime
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.k8s import container as container_command
from tests.k8s.container import POD_IP
from tests.k8s.controlplane import ControlPlane, RestClient, short_tmp

log = logging.getLogger(__name__)

NODE_NAME = "vahana-fake-node"
MAX_GRACE = 30.0


@dataclass
class _Run:
    uid: str
    name: str
    namespace: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    terminating: bool = False
    finished: bool = False
    thread: threading.Thread | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "container.log"


class FakeKubelet:
    """Plays the kubelet for Pods in `namespaces`; start(), stop()."""

    def __init__(
        self,
        plane: ControlPlane,
        namespaces: Sequence[str],
        *,
        label_selector: str | None = None,
        node_name: str = NODE_NAME,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.namespaces = list(namespaces)
        self.label_selector = label_selector
        self.node_name = node_name
        self.extra_env = dict(extra_env or {})
        self.rest = RestClient(plane.server, plane.token, plane.ca_file)
        self.root = Path(tempfile.mkdtemp(prefix="vh-kl-", dir=short_tmp()))
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._taken = 0
        self._stopping = threading.Event()
        self._watchers: list[threading.Thread] = []
        self._listed: list[threading.Event] = []

    # -- public API --------------------------------------------------------------------------------
    def start(self, timeout: float = 30) -> FakeKubelet:
        """Starts one watch per namespace; returns once each has listed the existing Pods."""
        for namespace in self.namespaces:
            listed = threading.Event()
            thread = threading.Thread(
                target=self._watch, args=(namespace, listed), name=f"kubelet-{namespace}",
                daemon=True,
            )  # fmt: skip
            thread.start()
            self._watchers.append(thread)
            self._listed.append(listed)
        for listed in self._listed:
            if not listed.wait(timeout):
                self.stop()
                raise AssertionError(f"fake kubelet: no Pod list within {timeout}s")
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stops watching, kills every process started (SIGTERM, then SIGKILL) and waits."""
        self._stopping.set()
        self.rest.close_watches()
        for thread in self._watchers:
            thread.join(timeout)
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            if run.process is not None:
                _signal_group(run.process, signal.SIGTERM)
        for run in runs:
            if run.process is not None:
                try:
                    run.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(run.process, signal.SIGKILL)
                    run.process.wait()
                _signal_group(run.process, signal.SIGKILL)  # stragglers of the group
            if run.thread is not None:
                run.thread.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def pid_of(self, pod_name: str) -> int | None:
        """The pid of the live process of that Pod, None if not started or ended."""
        return self.processes().get(pod_name)

    def processes(self) -> dict[str, int]:
        """Live processes by Pod name."""
        with self._lock:
            return {
                run.name: run.process.pid
                for run in self._runs.values()
                if run.process is not None and run.process.poll() is None
            }

    def pods(self) -> list[str]:
        """Names of every Pod taken so far (running or ended)."""
        with self._lock:
            return [run.name for run in self._runs.values()]

    def log_of(self, pod_name: str) -> str:
        """What the Pod's process wrote to stdout and stderr so far."""
        with self._lock:
            runs = [run for run in self._runs.values() if run.name == pod_name]
        if not runs or not runs[-1].log_path.exists():
            return ""
        return runs[-1].log_path.read_text(errors="replace")

    # -- watching ----------------------------------------------------------------------------------
    def _watch(self, namespace: str, listed: threading.Event) -> None:
        base = f"/api/v1/namespaces/{namespace}/pods"
        selector = f"&labelSelector={quote(self.label_selector)}" if self.label_selector else ""
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    status, body = self.rest.request("GET", f"{base}?limit=500{selector}")
                    if status != 200:
                        raise RuntimeError(f"list pods in {namespace}: {status} {body}")
                    for pod in body.get("items", []):
                        self._observe("ADDED", pod)
                    version = body["metadata"]["resourceVersion"]
                    listed.set()
                path = f"{base}?watch=1&allowWatchBookmarks=true&resourceVersion={version}"
                for event in self.rest.watch(path + selector):
                    if event["type"] == "ERROR":  # e.g. 410 Gone: list again
                        version = None
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._observe(event["type"], event["object"])
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("fake kubelet: watch of pods in %s failed; retrying", namespace)
                version = None
                self._stopping.wait(0.2)  # back-off before the retry, not a synchronisation

    def _observe(self, kind: str, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        with self._lock:
            run = self._runs.get(meta["uid"])
            if run is None:
                if kind == "DELETED" or spec.get("nodeName") or meta.get("deletionTimestamp"):
                    return
                if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                    return
                run = _Run(meta["uid"], meta["name"], meta["namespace"], self._pod_dir())
                run.thread = threading.Thread(
                    target=self._run_pod, args=(run, pod), name=f"pod-{run.name}", daemon=True
                )
                self._runs[run.uid] = run
                run.thread.start()
                return
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            self._kill(run, pod)
            if kind != "DELETED" and run.finished:
                self._confirm_deletion(run)

    def _pod_dir(self) -> Path:
        self._taken += 1
        path = self.root / str(self._taken)
        path.mkdir()
        return path

    # -- one pod -----------------------------------------------------------------------------------
    def _run_pod(self, run: _Run, pod: dict[str, Any]) -> None:
        binding = {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": run.name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }  # fmt: skip
        status, body = self.rest.request("POST", self._pod_path(run) + "/binding", binding)
        if status != 201:
            log.info("fake kubelet: not running %s: binding answered %s %s", run.name, status, body)
            with self._lock:
                self._runs.pop(run.uid, None)
            return
        container = pod["spec"]["containers"][0]
        started = _now()
        try:
            argv, env, cwd = container_command.prepare(
                pod, run.workdir, node_name=self.node_name, extra_env=self.extra_env, rest=self.rest
            )
            with open(run.log_path, "wb") as output:
                process = subprocess.Popen(
                    argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
        except Exception as error:
            log.warning("fake kubelet: cannot start %s: %s", run.name, error)
            terminated = {"exitCode": 128, "reason": "StartError", "message": str(error)}
            self._report(run, pod, container, "Failed", {"terminated": terminated}, started)
            run.finished = True
            return
        with self._lock:
            run.process = process
            kill_now = run.terminating
        log.info("fake kubelet: %s runs %s as pid %s", run.name, argv, process.pid)
        if kill_now:
            _signal_group(process, signal.SIGKILL)
        self._report(run, pod, container, "Running", {"running": {"startedAt": started}}, started)
        code = process.wait()
        _signal_group(process, signal.SIGKILL)  # the container ends with its main process
        exit_code = code if code >= 0 else 128 - code
        terminated = {
            "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": started, "finishedAt": _now(),
        }  # fmt: skip
        phase = "Succeeded" if exit_code == 0 else "Failed"
        self._report(run, pod, container, phase, {"terminated": terminated}, started)
        with self._lock:
            run.finished = True
            confirm = run.terminating
        if confirm:
            self._confirm_deletion(run)

    def _kill(self, run: _Run, pod: dict[str, Any]) -> None:
        with self._lock:
            if run.terminating:
                return
            run.terminating = True
            process = run.process
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", MAX_GRACE)
        grace = min(float(grace), MAX_GRACE)
        if process is not None and process.poll() is None:
            threading.Thread(
                target=_terminate, args=(process, grace), name=f"kill-{run.name}", daemon=True
            ).start()

    def _confirm_deletion(self, run: _Run) -> None:
        options = {
            "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
            "preconditions": {"uid": run.uid},
        }  # fmt: skip
        status, body = self.rest.request("DELETE", self._pod_path(run), options)
        if status not in (200, 404, 409):
            log.warning("fake kubelet: deleting %s answered %s %s", run.name, status, body)

    def _report(
        self,
        run: _Run,
        pod: dict[str, Any],
        container: dict[str, Any],
        phase: str,
        state: dict[str, Any],
        started: str,
    ) -> None:
        if self._stopping.is_set():
            return
        running = phase == "Running"
        now = _now()
        ready_reason = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(phase)

        def condition(kind: str, value: bool, reason: str | None = None) -> dict[str, Any]:
            item = {"type": kind, "status": str(value), "lastTransitionTime": now}
            return item | ({"reason": reason} if reason else {})

        status = {
            "phase": phase,
            "startTime": started,
            "hostIP": POD_IP, "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP, "podIPs": [{"ip": POD_IP}],
            "conditions": [
                condition("PodScheduled", True),
                condition("Initialized", True),
                condition("ContainersReady", running, ready_reason),
                condition("Ready", running, ready_reason),
            ],
            "containerStatuses": [{
                "name": container["name"], "image": container.get("image", ""), "imageID": "",
                "ready": running, "started": running, "restartCount": 0, "state": state,
            }],
        }  # fmt: skip
        code, body = self.rest.request(
            "PATCH", self._pod_path(run) + "/status", {"status": status},
            content_type="application/merge-patch+json",
        )  # fmt: skip
        if code != 200 and code != 404:
            log.warning("fake kubelet: %s status %s: %s %s", run.name, phase, code, body)

    def _pod_path(self, run: _Run) -> str:
        return f"/api/v1/namespaces/{run.namespace}/pods/{run.name}"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
