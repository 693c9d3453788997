"""`vahana operator` as a subprocess, acting with exactly the RBAC of deploy/manifests/rbac.yaml."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from tests.integration import harness
from tests.integration.harness import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "deploy" / "manifests" / "rbac.yaml"
VENV_BIN = Path(sys.executable).parent


@dataclasses.dataclass
class OperatorProcess:
    kubeconfig: Path
    namespace: str
    state_dir: Path
    port: int = dataclasses.field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    name: str = "operator"
    extra_args: tuple[str, ...] = ()
    more_namespaces: tuple[str, ...] = ()
    """Namespaces it watches besides `namespace` (which names its Lease)."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30, *, wait_serving: bool = True) -> OperatorProcess:
        self.starts += 1
        log = open(self.log_path(self.starts), "wb")  # noqa: SIM115 (Popen keeps it)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            # One Lease per watched namespace: tests' operators never wait for each other.
            "VAHANA_OPERATOR_LEASE_NAMESPACE": "vahana-system",
            "VAHANA_OPERATOR_LEASE_NAME": f"vahana-{self.namespace}",
            "VAHANA_OPERATOR_LEASE_SECONDS": "3",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vahana.cli.main",
                "operator",
                *(f"--namespace={n}" for n in (self.namespace, *self.more_namespaces)),
                f"--port={self.port}",
                f"--state-dir={self.state_dir}",
                "--heartbeat-interval=1",
                f"--worker-server-address={self.address}",
                "--log-level=info",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log.close()
        if wait_serving:
            wait_until(self._serving, timeout=timeout, message="operator serving")
        return self

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited: {self.log_text()[-3000:]}")
        return harness.serving(self.address)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        harness.stop_process(self.process, grace=20)

    def log_path(self, start: int) -> Path:
        return self.state_dir / f"{self.name}-{start}.log"

    def log_text(self) -> str:
        return "\n".join(
            self.log_path(n).read_text(errors="replace")
            for n in range(1, self.starts + 1)
            if self.log_path(n).exists()
        )
