"""A container kubelet: runs the Pods of a test's namespaces as real containers, with podman.

A `tests.k8s.node.Node` (watch, bind, status, deletion) whose runtime runs every container of
a Pod from its image the way a node would (`tests.k8s.podman_spec` says what is applied and
how): volumes prepared first (`tests.k8s.pod_volumes`: emptyDir, secret, configMap,
downwardAPI, the projected service-account token the Pod's ServiceAccount gets from the
TokenRequest API, claims bound to hostPath volumes), then the container with the Pod's
security context and limits, its probes (`tests.k8s.probes`) feeding the Ready condition,
liveness failures restarting it, `restartPolicy` (Always, OnFailure, Never) with a back-off
of 1 s doubling to 10 s, and the status with exit codes (OOMKilled named as such).
Deleting the Pod stops its containers as a kubelet does: SIGTERM, the grace period, SIGKILL
(`podman stop -t`). Images are never pulled: they must exist locally (ErrImageNeverPull).
Every container carries a label of this kubelet, so `stop()` removes them all.

The node is registered as a Node object (Ready) whose kubelet endpoint is
`tests.k8s.kubelet_api`: the API server proxies `kubectl logs` there, answered from
`podman logs` of the Pod's containers (the current run, or with `--previous` the one before).
`stop()` deletes the Node object. The Node's address, and the IP of its Pods (containers on
the host's network, as `hostNetwork` Pods), is this host's address on its default route:
Endpoints and EndpointSlices refuse loopback addresses, so a Service would have none.
Env from a Secret or ConfigMap (`secretKeyRef`, `configMapKeyRef`, `envFrom`) that does not
exist (and is not `optional`) holds the container in CreateContainerConfigError, retried
until it appears, as a kubelet does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from tests.k8s import container as container_env
from tests.k8s import kubelet_api, pod_volumes, podman_spec
from tests.k8s.container import POD_IP
from tests.k8s.controlplane import ControlPlane
from tests.k8s.node import Node, PodRun, now
from tests.k8s.probes import Prober

log = logging.getLogger(__name__)

NODE_NAME = "vahana-container-node"
LABEL = "dev.vahana.test-kubelet"
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 10.0
ENV_RETRY = 0.5
"""Seconds between two tries of a container whose env names a missing Secret or ConfigMap."""


def host_address() -> str:
    """This host's IPv4 address on its default route; 127.0.0.1 if it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # UDP: picks the route, sends nothing
            return str(probe.getsockname()[0])
        except OSError:
            return POD_IP


def podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclasses.dataclass
class _Container:
    spec: dict[str, Any]
    restarts: int = 0
    name: str = ""
    """The podman container of the current (or last) run."""
    state: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = dataclasses.field(default_factory=dict)
    ready: bool = False
    done: bool = False
    """Will not run again (ended under its restart policy, or cannot be created)."""

    def status(self) -> dict[str, Any]:
        running = "running" in self.state
        return {
            "name": self.spec["name"], "image": self.spec.get("image", ""), "imageID": "",
            "containerID": f"podman://{self.name}" if self.name else "",
            "ready": running and self.ready, "started": running,
            "restartCount": self.restarts, "state": self.state, "lastState": self.last_state,
        }  # fmt: skip


class ContainerKubelet(Node):
    """Plays the kubelet for Pods in `namespaces` with podman containers; start(), stop()."""

    def __init__(
        self,
        plane: ControlPlane,
        namespaces: Sequence[str],
        *,
        label_selector: str | None = None,
        node_name: str = NODE_NAME,
    ) -> None:
        super().__init__(
            plane, namespaces, label_selector=label_selector, node_name=node_name,
            prefix="vh-ck-", pod_ip=host_address(),
        )  # fmt: skip
        self.label = f"{LABEL}={self.root.name}"
        self.api = kubelet_api.KubeletApi(self._log_container, self.pod_ip)

    def start(self, timeout: float = 30) -> ContainerKubelet:
        """Serves the kubelet API, registers the Node, then takes Pods (`Node.start`)."""
        self.api.start()
        try:
            self._register_node()
            super().start(timeout)
        except BaseException:
            self.api.stop()
            raise
        return self

    def stop(self, timeout: float = 10) -> None:
        super().stop(timeout)
        # A restart that was starting while `_stop_runtime` listed the containers: gone too.
        self._stop_runtime([], 0)
        self.api.stop()
        try:
            status, body = self.rest.request("DELETE", f"/api/v1/nodes/{self.node_name}")
        except OSError as error:  # the control plane stopped first
            status, body = 0, {"message": str(error)}
        if status not in (200, 404):
            log.warning("kubelet: deleting node %s: %s %s", self.node_name, status, body)

    def _register_node(self) -> None:
        """The Node object: Ready, at `pod_ip`, its kubelet endpoint the API's port."""
        path = f"/api/v1/nodes/{self.node_name}"
        labels = {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux"}
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": labels}}  # fmt: skip
        status, body = self.rest.request("POST", "/api/v1/nodes", node)
        if status not in (201, 409):  # 409: left by a kubelet of this name that did not stop
            raise RuntimeError(f"kubelet: registering node {self.node_name}: {status} {body}")
        stamp = now()
        ready = {
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "the container kubelet of the tests is posting ready status",
            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
        }  # fmt: skip
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": str(memory), "pods": "110"}
        node_status = {
            # Only an InternalIP: the API server would try a Hostname address first.
            "addresses": [{"type": "InternalIP", "address": self.pod_ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.api.port}},
            "conditions": [ready], "capacity": capacity, "allocatable": capacity,
        }  # fmt: skip
        status, body = self.rest.request(
            "PATCH", path + "/status", {"status": node_status},
            content_type="application/merge-patch+json",
        )  # fmt: skip
        if status != 200:
            raise RuntimeError(f"kubelet: status of node {self.node_name}: {status} {body}")

    # -- what tests look at ------------------------------------------------------------------------
    def containers(self, *, running_only: bool = False) -> list[dict[str, Any]]:
        """podman's view of this kubelet's containers (`podman ps --format json`)."""
        args = ["ps", "--format", "json", "--filter", f"label={self.label}"]
        done = podman(*args, *([] if running_only else ["--all"]))
        return list(json.loads(done.stdout or "[]")) if done.returncode == 0 else []

    def container_of(self, pod_name: str, container: str | None = None) -> str:
        """The podman name of the Pod's (first, or named) container's current run; "" if none."""
        with self._lock:
            runs = [run for run in self._runs.values() if run.name == pod_name]
        if not runs:
            return ""
        containers: list[_Container] = runs[-1].runtime.get("containers", [])
        for item in containers:
            if container is None or item.spec["name"] == container:
                return item.name
        return ""

    def log_of(self, pod_name: str, container: str | None = None) -> str:
        """What the container's current run wrote to stdout and stderr so far."""
        name = self.container_of(pod_name, container)
        if not name:
            return ""
        done = podman("logs", name)
        return done.stdout + done.stderr

    def _log_container(self, namespace: str, pod: str, container: str, previous: bool) -> str:
        """The podman container whose logs `kubectl logs` (with `--previous`) reads; raises
        kubelet_api.LogsUnavailable with the kubelet's message when there is none."""
        with self._lock:
            runs = [r for r in self._runs.values() if (r.namespace, r.name) == (namespace, pod)]
        if not runs:
            raise kubelet_api.LogsUnavailable(404, f'pod "{pod}" not found on this node')
        containers: list[_Container] = runs[-1].runtime.get("containers", [])
        item = next((c for c in containers if c.spec["name"] == container), None)
        if item is None:
            raise kubelet_api.LogsUnavailable(
                404, f'container "{container}" in pod "{pod}" not found'
            )
        if previous:
            if item.restarts == 0:
                raise kubelet_api.LogsUnavailable(
                    400, f'previous terminated container "{container}" in pod "{pod}" '
                    "not found",
                )  # fmt: skip
            meta = {"name": pod, "namespace": namespace, "uid": runs[-1].uid}
            return podman_spec.container_name({"metadata": meta}, item.spec, item.restarts - 1)
        if not item.name:
            reason = item.state.get("waiting", {}).get("reason", "ContainerCreating")
            raise kubelet_api.LogsUnavailable(
                400, f'container "{container}" in pod "{pod}" is waiting to start: {reason}'
            )
        return item.name

    # -- the runtime -------------------------------------------------------------------------------
    def _run_pod(self, run: PodRun, pod: dict[str, Any]) -> None:
        containers = [_Container(spec) for spec in pod["spec"]["containers"]]
        run.runtime["containers"] = containers
        self._publish(run, pod)
        try:
            volumes = pod_volumes.prepare(
                pod, run.workdir, self.rest, node_name=self.node_name,
                alive=lambda: not run.terminating, stopping=self._stopping, pod_ip=self.pod_ip,
            )  # fmt: skip
        except pod_volumes.VolumeNotReady:
            return  # deleted while it waited for its volumes
        except (ValueError, OSError) as error:
            for item in containers:
                item.state = {"waiting": {"reason": "CreateContainerConfigError",
                                          "message": str(error)}}  # fmt: skip
                item.done = True
            self._publish(run, pod)
            return
        status, body = self.rest.request("GET", "/api/v1/services")
        services = body.get("items", []) if status == 200 else []
        facts = podman_spec.NodeFacts(
            api_port=self.plane.api_port,
            service_hosts=podman_spec.service_hosts(services, run.namespace),
            labels={LABEL: self.root.name, "io.kubernetes.pod.name": run.name},
        )
        threads = [
            threading.Thread(
                target=self._supervise,
                args=(run, pod, item, volumes, facts),
                name=f"container-{run.name}-{item.spec['name']}",
                daemon=True,
            )  # fmt: skip
            for item in containers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _supervise(
        self,
        run: PodRun,
        pod: dict[str, Any],
        item: _Container,
        volumes: dict[str, pod_volumes.HostVolume],
        facts: podman_spec.NodeFacts,
    ) -> None:
        """Runs one container, again and again as its restart policy says."""
        policy = pod["spec"].get("restartPolicy", "Always")
        backoff = FIRST_BACKOFF
        while not (run.terminating or self._stopping.is_set()):
            code = self._run_once(run, pod, item, volumes, facts)
            if code is None:
                item.done = True
                self._publish(run, pod)
                return
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            if not restart or run.terminating or self._stopping.is_set():
                item.done = True
                self._publish(run, pod)
                return
            item.last_state, item.restarts = item.state, item.restarts + 1
            reason = "CrashLoopBackOff" if code else "Completed"
            item.state = {"waiting": {"reason": reason}}
            self._publish(run, pod)
            if item.restarts >= 2:  # the previous run stays for its logs, older ones go
                podman(
                    "rm", "--force", podman_spec.container_name(pod, item.spec, item.restarts - 2)
                )
            self._stopping.wait(backoff)  # the restart back-off, a timer
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _run_once(
        self,
        run: PodRun,
        pod: dict[str, Any],
        item: _Container,
        volumes: dict[str, pod_volumes.HostVolume],
        facts: podman_spec.NodeFacts,
    ) -> int | None:
        """Creates, starts and waits for one run of the container: its exit code, or None
        if it could not be created (the reason is on its status)."""
        spec = item.spec
        inspected = podman("image", "inspect", spec["image"])
        if inspected.returncode != 0:
            message = f'image "{spec["image"]}" is not present with pull policy of Never'
            item.state = {"waiting": {"reason": "ErrImageNeverPull", "message": message}}
            return None
        image_user = json.loads(inspected.stdout)[0].get("Config", {}).get("User", "")
        env = self._container_env(run, pod, item)
        if env is None:
            return None
        item.name = podman_spec.container_name(pod, spec, item.restarts)
        try:
            args = podman_spec.run_args(
                pod, spec, name=item.name, env=env, volumes=volumes, image_user=image_user,
                node=facts,
            )  # fmt: skip
        except podman_spec.ContainerConfigError as error:
            item.state = {"waiting": {"reason": "CreateContainerConfigError",
                                      "message": str(error)}}  # fmt: skip
            return None
        started = podman(*args)
        if started.returncode != 0:
            log.warning("kubelet: %s: podman run failed: %s", item.name, started.stderr.strip())
            item.state = {"terminated": {"exitCode": 128, "reason": "StartError",
                                         "message": started.stderr.strip()[-500:],
                                         "startedAt": now(), "finishedAt": now()}}  # fmt: skip
            return 128
        item.state = {"running": {"startedAt": now()}}
        log.info("kubelet: %s runs as container %s", run.name, item.name)
        prober = Prober(
            spec,
            on_ready=lambda ready: self._set_ready(run, pod, item, ready),
            on_unhealthy=lambda why: self._restart_unhealthy(run, item, why),
            exec_argv=("podman", "exec", item.name),
        ).start()
        self._publish(run, pod)
        if run.terminating:  # deleted while starting
            self._stop_container(item.name, run.grace)
        waited = podman("wait", item.name, timeout=24 * 3600)
        prober.stop()
        item.ready = False
        code = int(waited.stdout.strip().splitlines()[-1]) if waited.returncode == 0 else 137
        oom = podman("inspect", "--format", "{{.State.OOMKilled}}", item.name).stdout.strip()
        reason = "OOMKilled" if oom == "true" else ("Completed" if code == 0 else "Error")
        item.state = {
            "terminated": {
                "exitCode": code, "reason": reason, "containerID": f"podman://{item.name}",
                "startedAt": item.state.get("running", {}).get("startedAt", now()),
                "finishedAt": now(),
            }
        }  # fmt: skip
        return code

    def _container_env(
        self, run: PodRun, pod: dict[str, Any], item: _Container
    ) -> dict[str, str] | None:
        """The container's env; while a Secret or ConfigMap it names is missing, the container
        waits in CreateContainerConfigError (None if the Pod is deleted meanwhile)."""
        while True:
            try:
                return container_env.container_env(
                    pod, item.spec, node_name=self.node_name, rest=self.rest, base={},
                    strict=True, pod_ip=self.pod_ip,
                )  # fmt: skip
            except container_env.MissingEnvSource as error:
                waiting = {"reason": "CreateContainerConfigError", "message": str(error)}
                if item.state.get("waiting") != waiting:
                    item.state = {"waiting": waiting}
                    self._publish(run, pod)
            if run.terminating or self._stopping.wait(ENV_RETRY):  # the kubelet's retry timer
                return None

    def _set_ready(self, run: PodRun, pod: dict[str, Any], item: _Container, ready: bool) -> None:
        item.ready = ready
        self._publish(run, pod)

    def _restart_unhealthy(self, run: PodRun, item: _Container, why: str) -> None:
        log.info(
            "kubelet: %s: container %s is unhealthy (%s); restarting", run.name, item.name, why
        )
        self._stop_container(item.name, run.grace)

    def _publish(self, run: PodRun, pod: dict[str, Any]) -> None:
        """Reports the Pod's phase and its containers' statuses as they stand."""
        with self._lock:
            containers: list[_Container] = run.runtime.get("containers", [])
            statuses = [item.status() for item in containers]
            ended = [item.state.get("terminated") for item in containers if item.done]
            if containers and len(ended) == len(containers) and all(ended):
                phase = "Succeeded" if all(e["exitCode"] == 0 for e in ended if e) else "Failed"
            elif any("running" in s["state"] or s["restartCount"] for s in statuses):
                phase = "Running"
            else:
                phase = "Pending"
            ready = bool(statuses) and all(s["ready"] for s in statuses)
        self.report(run, phase, statuses, ready=ready)

    def _kill(self, run: PodRun) -> None:
        containers: list[_Container] = run.runtime.get("containers", [])
        for item in containers:
            if item.name and "running" in item.state:
                threading.Thread(
                    target=self._stop_container, args=(item.name, run.grace),
                    name=f"stop-{item.name}", daemon=True,
                ).start()  # fmt: skip

    @staticmethod
    def _stop_container(name: str, grace: float) -> None:
        """SIGTERM, up to `grace` seconds, then SIGKILL."""
        podman("stop", "--time", str(int(grace)), name, timeout=grace + 60)

    def _stop_runtime(self, runs: list[PodRun], timeout: float) -> None:
        """Removes every container of this kubelet (SIGTERM, `timeout`, SIGKILL)."""
        found = podman("ps", "--all", "--quiet", "--filter", f"label={self.label}")
        names = found.stdout.split()
        if names:
            podman("rm", "--force", "--time", str(int(timeout)), *names, timeout=timeout + 120)
