"""What every test kubelet does, whatever runs the Pods: watch, bind, report, confirm deletion.

The envtest control plane has no scheduler and no kubelet. A `Node` watches Pods (optionally by
label selector) in its namespaces and takes every Pod with no `spec.nodeName`: it binds it to
itself through the pods/binding subresource (as a scheduler would), has a runtime start it
(`_run_pod`, a thread per Pod), and writes the Pod's status subresource so that the real Job
and ReplicaSet controllers act on it. Deleting the Pod (watch DELETED or deletionTimestamp set)
asks the runtime to stop it within its grace period (`_kill`: the Pod's
deletionGracePeriodSeconds, else terminationGracePeriodSeconds, default 30, at most
`MAX_GRACE`); once it is stopped a Pod being deleted is deleted again with
gracePeriodSeconds=0, confirming it as a kubelet does.

Runtimes: `tests.k8s.kubelet.FakeKubelet` (the first container's command as a local process)
and `tests.k8s.podman_kubelet.ContainerKubelet` (every container from its image, with podman).
"""

from __future__ import annotations

import abc
import datetime
import logging
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from tests.k8s.container import POD_IP
from tests.k8s.controlplane import ControlPlane, RestClient, short_tmp

log = logging.getLogger(__name__)

MAX_GRACE = 30.0


@dataclass
class PodRun:
    """One Pod this node took: its identity, its directory and how far it got."""

    uid: str
    name: str
    namespace: str
    workdir: Path
    terminating: bool = False
    finished: bool = False
    thread: threading.Thread | None = None
    grace: float = MAX_GRACE
    started_at: str = ""
    runtime: dict[str, Any] = field(default_factory=dict)
    """What the runtime keeps about the Pod (processes, container names…)."""


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def grace_of(pod: dict[str, Any]) -> float:
    grace = pod["metadata"].get("deletionGracePeriodSeconds")
    if grace is None:
        grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", MAX_GRACE)
    return min(float(grace), MAX_GRACE)


class Node(abc.ABC):
    """Plays the kubelet for Pods in `namespaces`; start(), stop()."""

    def __init__(
        self,
        plane: ControlPlane,
        namespaces: Sequence[str],
        *,
        label_selector: str | None,
        node_name: str,
        prefix: str,
        pod_ip: str = POD_IP,
    ) -> None:
        self.plane = plane
        self.pod_ip = pod_ip
        """The IP every Pod of this node reports (its containers share the host's network)."""
        self.namespaces = list(namespaces)
        self.label_selector = label_selector
        self.node_name = node_name
        self.rest = RestClient(plane.server, plane.token, plane.ca_file)
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir=short_tmp()))
        self._lock = threading.Lock()
        self._runs: dict[str, PodRun] = {}
        self._taken = 0
        self._stopping = threading.Event()
        self._watchers: list[threading.Thread] = []
        self._listed: list[threading.Event] = []

    # -- what a runtime provides -----------------------------------------------------------------
    @abc.abstractmethod
    def _run_pod(self, run: PodRun, pod: dict[str, Any]) -> None:
        """Runs the Pod to its end (on its own thread), reporting its status on the way."""

    @abc.abstractmethod
    def _kill(self, run: PodRun) -> None:
        """Stops the Pod's containers within `run.grace` seconds (returns at once)."""

    @abc.abstractmethod
    def _stop_runtime(self, runs: list[PodRun], timeout: float) -> None:
        """Stops whatever still runs when the node stops."""

    # -- public API --------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> Node:
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
                raise AssertionError(f"{type(self).__name__}: no Pod list within {timeout}s")
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stops watching, stops every Pod started and waits for their threads."""
        self._stopping.set()
        self.rest.close_watches()
        for thread in self._watchers:
            thread.join(timeout)
        with self._lock:
            runs = list(self._runs.values())
        self._stop_runtime(runs, timeout)
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    def pods(self) -> list[str]:
        """Names of every Pod taken so far (running or ended)."""
        with self._lock:
            return [run.name for run in self._runs.values()]

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
                log.exception("kubelet: watch of pods in %s failed; retrying", namespace)
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
                self._taken += 1
                workdir = self.root / str(self._taken)
                workdir.mkdir()
                run = PodRun(meta["uid"], meta["name"], meta["namespace"], workdir)
                run.thread = threading.Thread(
                    target=self._bind_and_run, args=(run, pod), name=f"pod-{run.name}",
                    daemon=True,
                )  # fmt: skip
                self._runs[run.uid] = run
                run.thread.start()
                return
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            with self._lock:
                first = not run.terminating
                run.terminating = True
                run.grace = grace_of(pod)
            if first:
                self._kill(run)
            if kind != "DELETED" and run.finished:
                self.confirm_deletion(run)

    def _bind_and_run(self, run: PodRun, pod: dict[str, Any]) -> None:
        binding = {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": run.name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }  # fmt: skip
        status, body = self.rest.request("POST", self.pod_path(run) + "/binding", binding)
        if status != 201:
            log.info("kubelet: not running %s: binding answered %s %s", run.name, status, body)
            with self._lock:
                self._runs.pop(run.uid, None)
            return
        run.started_at = now()
        try:
            self._run_pod(run, pod)
        except Exception:
            log.exception("kubelet: running %s failed", run.name)
        with self._lock:
            run.finished = True
            confirm = run.terminating
        if confirm:
            self.confirm_deletion(run)

    # -- writing to the API server ------------------------------------------------------------
    def confirm_deletion(self, run: PodRun) -> None:
        options = {
            "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
            "preconditions": {"uid": run.uid},
        }  # fmt: skip
        status, body = self.rest.request("DELETE", self.pod_path(run), options)
        if status not in (200, 404, 409):
            log.warning("kubelet: deleting %s answered %s %s", run.name, status, body)

    def report(
        self,
        run: PodRun,
        phase: str,
        containers: list[dict[str, Any]],
        *,
        ready: bool,
        message: str = "",
    ) -> None:
        """Writes the Pod's status: its phase, conditions and the containers' statuses."""
        if self._stopping.is_set():
            return
        stamp = now()
        ended_reason = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(phase)
        not_ready = ended_reason or "ContainersNotReady"

        def condition(kind: str, value: bool, reason: str | None = None) -> dict[str, Any]:
            item = {"type": kind, "status": str(value), "lastTransitionTime": stamp}
            return item | ({"reason": reason} if reason and not value else {})

        status = {
            "phase": phase,
            "startTime": run.started_at,
            "hostIP": self.pod_ip, "hostIPs": [{"ip": self.pod_ip}],
            "podIP": self.pod_ip, "podIPs": [{"ip": self.pod_ip}],
            "conditions": [
                condition("PodScheduled", True),
                condition("Initialized", True),
                condition("ContainersReady", ready, not_ready),
                condition("Ready", ready, not_ready),
            ],
            "containerStatuses": containers,
        }  # fmt: skip
        if message:
            status["message"] = message
        code, body = self.rest.request(
            "PATCH", self.pod_path(run) + "/status", {"status": status},
            content_type="application/merge-patch+json",
        )  # fmt: skip
        if code != 200 and code != 404:
            log.warning("kubelet: %s status %s: %s %s", run.name, phase, code, body)

    def pod_path(self, run: PodRun) -> str:
        return f"/api/v1/namespaces/{run.namespace}/pods/{run.name}"
