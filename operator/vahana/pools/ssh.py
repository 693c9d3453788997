"""ssh command lines for the pools that reach other machines (slurm login node, bare-metal hosts).

Host keys are always checked (`StrictHostKeyChecking=yes` against the pool's known_hosts file,
no global file), the client never prompts (`BatchMode=yes`) and offers only the given key.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class SshTarget:
    host: str
    port: int = 22
    user: str = ""
    key_file: str = ""
    known_hosts_file: str = ""
    connect_timeout_seconds: int = 10

    @property
    def label(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def command(self, remote: str | Sequence[str]) -> list[str]:
        """`ssh … user@host REMOTE`; a sequence is quoted for the remote shell."""
        remote_text = remote if isinstance(remote, str) else shlex.join(remote)
        argv = ["ssh", "-p", str(self.port), "-o", "StrictHostKeyChecking=yes"]
        if self.known_hosts_file:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts_file}"]
            argv += ["-o", "GlobalKnownHostsFile=/dev/null"]
        if self.key_file:
            argv += ["-i", self.key_file, "-o", "IdentitiesOnly=yes"]
        argv += [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout_seconds}",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=3",
            "-T",
            "--",
            f"{self.user}@{self.host}" if self.user else self.host,
            remote_text,
        ]
        return argv


def check_host(host: str) -> str:
    """A host name may not look like an ssh option or hold spaces."""
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        raise ValueError(f"host {host!r}: not a host name or address")
    return host
