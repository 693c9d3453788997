"""Container probes as a kubelet runs them: grpc, tcpSocket, httpGet and exec.

Containers share the host's network here, so every probe goes to 127.0.0.1 (or the probe's
`host`) on the container's port (a number, or the name of one of its `ports`). A probe passes
after `successThreshold` successes in a row and fails after `failureThreshold` failures in a
row, tried every `periodSeconds` after `initialDelaySeconds`, each try bounded by
`timeoutSeconds` (Kubernetes' defaults: 1, 3, 10, 0, 1). Liveness and readiness wait for the
startup probe, if there is one, to pass.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

KINDS = ("startupProbe", "livenessProbe", "readinessProbe")


def port_of(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for item in container.get("ports", []):
        if item.get("name") == port:
            return int(item["containerPort"])
    raise ValueError(f"container {container['name']} has no port named {port!r}")


def try_probe(
    probe: dict[str, Any], container: dict[str, Any], exec_argv: Sequence[str] = ()
) -> bool:
    """One try of the probe; True when it passes."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "grpc" in probe:
            target = f"127.0.0.1:{port_of(container, probe['grpc']['port'])}"
            with grpc.insecure_channel(target) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", "")),
                    timeout=timeout,
                )
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"]
            address = (spec.get("host") or "127.0.0.1", port_of(container, spec["port"]))
            with socket.create_connection(address, timeout=timeout):
                return True
        if "httpGet" in probe:
            spec = probe["httpGet"]
            scheme = spec.get("scheme", "HTTP").lower()
            host = spec.get("host") or "127.0.0.1"
            url = f"{scheme}://{host}:{port_of(container, spec['port'])}{spec.get('path', '/')}"
            request = urllib.request.Request(url)
            for header in spec.get("httpHeaders", []):
                request.add_header(header["name"], header["value"])
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return 200 <= response.status < 400
        if "exec" in probe:
            done = subprocess.run(
                [*exec_argv, *probe["exec"]["command"]],
                capture_output=True, timeout=timeout + 5, check=False,
            )  # fmt: skip
            return done.returncode == 0
    except (OSError, grpc.RpcError, urllib.error.URLError, subprocess.TimeoutExpired, ValueError):
        return False
    raise ValueError(f"probe {sorted(probe)} of {container['name']}: unknown handler")


@dataclasses.dataclass
class _State:
    kind: str
    spec: dict[str, Any]
    due: float
    passing: bool = False
    successes: int = 0
    failures: int = 0


class Prober:
    """Runs a container's probes on a thread until `stop()`.

    `on_ready(bool)` is called when readiness changes (a container without a readiness probe
    is ready once started); `on_unhealthy(reason)` when liveness (or startup) fails.
    """

    def __init__(
        self,
        container: dict[str, Any],
        *,
        on_ready: Callable[[bool], None],
        on_unhealthy: Callable[[str], None],
        exec_argv: Sequence[str] = (),
    ) -> None:
        self.container = container
        self.on_ready = on_ready
        self.on_unhealthy = on_unhealthy
        self.exec_argv = list(exec_argv)
        started = time.monotonic()
        self._states = [
            _State(
                kind,
                container[kind],
                started + float(container[kind].get("initialDelaySeconds", 0)),
            )
            for kind in KINDS
            if kind in container
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"probe-{container['name']}", daemon=True
        )

    def start(self) -> Prober:
        if not any(state.kind == "readinessProbe" for state in self._states):
            self.on_ready(True)
        if self._states:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        startup = next((s for s in self._states if s.kind == "startupProbe"), None)
        while not self._stop.is_set():
            now = time.monotonic()
            for state in self._states:
                if state.kind != "startupProbe" and startup is not None and not startup.passing:
                    continue
                if state.kind == "startupProbe" and state.passing:
                    continue
                if now < state.due:
                    continue
                state.due = now + float(state.spec.get("periodSeconds", 10))
                self._judge(state, try_probe(state.spec, self.container, self.exec_argv))
            wake = min((s.due for s in self._states), default=now + 1)
            self._stop.wait(max(0.05, wake - time.monotonic()))  # the probe period, a timer

    def _judge(self, state: _State, passed: bool) -> None:
        if passed:
            state.successes, state.failures = state.successes + 1, 0
            if not state.passing and state.successes >= int(state.spec.get("successThreshold", 1)):
                state.passing = True
                if state.kind == "readinessProbe":
                    self.on_ready(True)
            return
        state.failures, state.successes = state.failures + 1, 0
        if state.failures < int(state.spec.get("failureThreshold", 3)):
            return
        if state.kind == "readinessProbe":
            if state.passing:
                state.passing = False
                self.on_ready(False)
            return
        state.failures = 0
        self.on_unhealthy(f"{state.kind} failed {state.spec.get('failureThreshold', 3)} times")
