"""A real Kubernetes control plane for tests: etcd + kube-apiserver (+ kube-controller-manager).

The Python twin of `../shared/envtest/start-control-plane` (the tested reference for the flags):
free loopback ports, a short temp dir, a service-account key pair, a static admin token in
`system:masters`, RBAC authorization, readiness on /readyz with a deadline. `stop()` ends the
controller-manager and the apiserver first, then etcd (with etcd gone first the apiserver hangs).

Binaries come from `$KUBEBUILDER_ASSETS`
(`export KUBEBUILDER_ASSETS=$(../shared/envtest/setup-envtest)`).
`RestClient` is a small JSON client over the admin (or any) token, with watches that another
thread can interrupt; `api_client()` gives the official `kubernetes` client for the admin.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest
from vahana.k8s import resources

from tests.waiting import wait_until

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
CONTROLLERS = (
    "garbagecollector,job,namespace,serviceaccount,serviceaccount-token,"
    "deployment,replicaset,root-ca-cert-publisher,persistentvolume-binder"
)
SETUP_HINT = (
    "the Kubernetes tests need etcd, kube-apiserver, kube-controller-manager and kubectl: "
    "set KUBEBUILDER_ASSETS: export KUBEBUILDER_ASSETS=$(../shared/envtest/setup-envtest)"
)


def require(available: bool, reason: str) -> None:
    """Skips the test when a component is missing; under CI=true fails instead."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def assets_dir() -> Path | None:
    """The directory of the envtest binaries, or None when unset or incomplete."""
    value = os.environ.get("KUBEBUILDER_ASSETS", "")
    if not value:
        return None
    path = Path(value)
    return path if all(os.access(path / name, os.X_OK) for name in BINARIES) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RestClient:
    """JSON over HTTPS with a bearer token; `watch()` streams can be cut by `close_watches()`."""

    def __init__(self, server: str, token: str, ca_file: Path) -> None:
        parts = urlsplit(server)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        self.token = token
        self.context = ssl.create_default_context(cafile=str(ca_file))
        self._lock = threading.Lock()
        self._watches: set[http.client.HTTPSConnection] = set()
        self._closed = False

    def _connection(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=timeout
        )

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> tuple[int, dict[str, Any]]:
        """One call; returns (HTTP status, decoded JSON body). Never raises on 4xx/5xx."""
        conn = self._connection(timeout)
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            try:
                decoded = json.loads(raw) if raw else {}
            except ValueError:
                decoded = {"message": raw.decode(errors="replace")}
            return response.status, decoded
        finally:
            conn.close()

    def watch(self, path: str) -> Iterator[dict[str, Any]]:
        """Yields watch events ({"type", "object"}) of `path` (which has ?watch=1...)."""
        conn = self._connection(None)
        with self._lock:
            if self._closed:
                return
            self._watches.add(conn)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            response = conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"watch {path}: HTTP {response.status}: {response.read()!r}")
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        except (OSError, http.client.HTTPException, ValueError):
            if not self._closed:
                raise
        finally:
            with self._lock:
                self._watches.discard(conn)
            conn.close()

    def close_watches(self) -> None:
        """Ends every open watch (from any thread) and refuses new ones."""
        with self._lock:
            self._closed = True
            watches = list(self._watches)
        for conn in watches:
            if conn.sock is not None:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)


_VAHANA = f"apis/{resources.GROUP}/{resources.VERSION}"
RESOURCES = {
    name: (group, plural)
    for group, plural, singular in (
        (_VAHANA, resources.TASKS, "task"),
        (_VAHANA, resources.POOLS, "workerpool"),
        (_VAHANA, resources.WORKERS, "worker"),
        (_VAHANA, resources.QUEUES, "queue"),
        ("apis/batch/v1", "jobs", "job"),
        ("api/v1", "pods", "pod"),
        ("api/v1", "secrets", "secret"),
    )
    for name in (plural, singular)
}
"""kubectl's resource names → (API group path, plural)."""


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) on loopback ports; start(), stop()."""

    def __init__(
        self,
        assets: Path | None = None,
        *,
        controller_manager: bool = True,
        controllers: str = CONTROLLERS,
        ready_timeout: float = 60,
        stop_timeout: float = 3,
    ) -> None:
        found = assets or assets_dir()
        require(found is not None, SETUP_HINT)
        assert found is not None
        self.assets = found
        self.with_controller_manager = controller_manager
        self.controllers = controllers
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="vh-k8s-", dir=short_tmp()))
        self.token = secrets.token_hex(16)
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.kubeconfig = self.dir / "kubeconfig"
        self.ca_file = self.dir / "certs" / "apiserver.crt"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> ControlPlane:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        d = self.dir
        _run(["openssl", "genrsa", "-out", str(d / "sa.key"), "2048"])
        _run(["openssl", "rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub")])
        (d / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn("etcd", [
            "--data-dir", str(d / "etcd"), "--unsafe-no-fsync",
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
        ])  # fmt: skip
        self._spawn("kube-apiserver", [
            "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--secure-port", str(self.api_port),
            "--cert-dir", str(d / "certs"),
            "--service-cluster-ip-range", "10.0.0.0/24",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(d / "sa.pub"),
            "--service-account-signing-key-file", str(d / "sa.key"),
            "--token-auth-file", str(d / "tokens.csv"), "--authorization-mode", "RBAC",
        ])  # fmt: skip
        wait_until(
            lambda: self._exited() or (self.ca_file.exists() and self.ca_file.stat().st_size > 0),
            timeout=self.ready_timeout,
            message=f"the apiserver's serving certificate (log: {d / 'kube-apiserver.log'})",
        )
        self.check_alive()
        self.write_kubeconfig(self.kubeconfig, user="admin", token=self.token)
        self.rest = RestClient(self.server, self.token, self.ca_file)
        wait_until(
            lambda: self._exited() or self._ready(),
            timeout=self.ready_timeout,
            message=f"/readyz of the apiserver (log: {d / 'kube-apiserver.log'})",
        )
        self.check_alive()
        if self.with_controller_manager:
            self._spawn("kube-controller-manager", [
                "--kubeconfig", str(self.kubeconfig),
                "--bind-address", "127.0.0.1", "--secure-port", "0",
                "--controllers", self.controllers,
                "--service-account-private-key-file", str(d / "sa.key"),
                "--root-ca-file", str(self.ca_file), "--leader-elect=false",
            ])  # fmt: skip

    def stop(self) -> None:
        """Stops everything started, always in the safe order; idempotent."""
        rest = getattr(self, "rest", None)
        if rest is not None:
            rest.close_watches()
        first = [self._processes.get(n) for n in ("kube-controller-manager", "kube-apiserver")]
        # The apiserver's graceful shutdown can take 10 s and more with watches left over; the
        # data is thrown away, so after `stop_timeout` it is killed (still before etcd).
        _terminate([p for p in first if p is not None], timeout=self.stop_timeout)
        etcd = self._processes.get("etcd")
        _terminate([etcd] if etcd else [], timeout=10)
        self._processes.clear()
        for handle in self._logs:
            handle.close()
        self._logs.clear()
        if os.environ.get("VAHANA_KEEP_CONTROL_PLANE"):
            log.warning("control plane files kept in %s", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _spawn(self, binary: str, args: list[str]) -> None:
        handle = open(self.dir / f"{binary}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(handle)
        self._processes[binary] = subprocess.Popen(
            [str(self.assets / binary), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _exited(self) -> bool:
        return any(process.poll() is not None for process in self._processes.values())

    def check_alive(self) -> bool:
        """True, or raises naming the component that exited, with the tail of its log."""
        for name, process in self._processes.items():
            if process.poll() is not None:
                tail = self.log_tail(name)
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
        return True

    def _ready(self) -> bool:
        status, _ = self.rest.request("GET", "/readyz", timeout=5)
        return status == 200

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- clients -----------------------------------------------------------------------------------
    def write_kubeconfig(
        self, path: Path, *, user: str, token: str, namespace: str = "default"
    ) -> Path:
        """A kubeconfig for this server with a bearer token, TLS verified against its cert."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "envtest", "cluster": {
                "server": self.server, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "envtest", "context": {
                "cluster": "envtest", "user": user, "namespace": namespace}}],
            "current-context": "envtest",
        }  # fmt: skip
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        path.chmod(0o600)
        return path

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this control plane (admin unless `kubeconfig`); text output."""
        command = [
            str(self.assets / "kubectl"),
            "--kubeconfig", str(kubeconfig or self.kubeconfig),
            "--cache-dir", str(self.dir / "kubectl-cache"),
            *args,
        ]  # fmt: skip
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def read(self, namespace: str | None, kind: str, name: str = "") -> Any:
        """What `kubectl get KIND [NAME] -o json` prints (None for a missing object), read over
        the API: polling loops would otherwise start a kubectl, and its discovery, per try."""
        group, plural = RESOURCES[kind]
        where = f"/namespaces/{namespace}" if namespace else ""
        path = f"/{group}{where}/{plural}" + (f"/{name}" if name else "")
        status, body = self.rest.request("GET", path)
        if status == 404 and name:
            return None
        assert status == 200, body
        return body

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` for the admin (close it when done)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]

    def apply_crds(self, path: Path = CRDS) -> None:
        """Applies the CRDs and waits until each is Established (served)."""
        self.kubectl("apply", "-f", str(path))
        self.kubectl(
            "wait", "--for", "condition=Established", "--timeout", "30s",
            "crd/tasks.vahana.dev", "crd/workerpools.vahana.dev", "crd/workers.vahana.dev",
        )  # fmt: skip


def short_tmp() -> str | None:
    # Unix socket paths (workers, scheduler) live under test dirs: keep them short.
    return "/tmp" if os.path.isdir("/tmp") else None


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)


def _terminate(processes: list[subprocess.Popen[bytes]], *, timeout: float) -> None:
    """SIGTERM all, wait up to `timeout` for each, then SIGKILL the stragglers."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    for process in processes:
        try:
            process.wait(timeout=max(0.0, started + timeout - time.monotonic()))
            log.info("pid %s ended %.2fs after SIGTERM", process.pid, time.monotonic() - started)
        except subprocess.TimeoutExpired:
            log.info("pid %s still running %ss after SIGTERM; SIGKILL", process.pid, timeout)
            process.kill()
            process.wait()
