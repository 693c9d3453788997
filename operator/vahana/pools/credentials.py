"""What a pool's remote worker is given to authenticate: its pool's secret and its TLS files.

Pure: both the script renderer (SLURM, bare metal) and the Job builder (Kubernetes) take their
flags, environment names and spec checks from here, so the three adapters agree on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

BOOTSTRAP_ENV = "VAHANA_WORKER_BOOTSTRAP_TOKEN"
"""The worker reads its pool's bootstrap secret from this variable and never passes it on."""
BOOTSTRAP_SECRET_KEY = "bootstrap-token"
"""Key of the pool's secret in the Kubernetes Secret its worker Pods read it from."""
TLS_FIELDS = ("caFile", "certFile", "keyFile")
"""The fields of a pool's `tls` section (slurm, baremetal), all required together."""


@dataclasses.dataclass(frozen=True)
class WorkerTls:
    """Paths, where the worker runs, of its mutual-TLS files."""

    ca_file: str
    """CA of the scheduler's certificate."""
    cert_file: str
    """The worker's client certificate, signed by a CA the scheduler trusts."""
    key_file: str

    def args(self) -> list[str]:
        return [
            f"--tls-ca-file={self.ca_file}",
            f"--tls-cert-file={self.cert_file}",
            f"--tls-key-file={self.key_file}",
        ]


def worker_tls(section: Mapping[str, Any], field: str, *, required: bool) -> WorkerTls | None:
    """The `tls` of a pool's type section ({caFile, certFile, keyFile}); ValueError names the
    field when it is partial, or missing while the scheduler serves mutual TLS."""
    given = section.get("tls") or {}
    missing = [name for name in TLS_FIELDS if not given.get(name)]
    if not given:
        if required:
            raise ValueError(
                f"{field}: required — this scheduler serves mutual TLS, so its workers need "
                "caFile, certFile and keyFile (paths on the nodes where the workers run)"
            )
        return None
    if missing:
        raise ValueError(
            f"{field}: {', '.join(missing)} missing — give all of caFile, certFile, keyFile"
        )
    return WorkerTls(given["caFile"], given["certFile"], given["keyFile"])


def bootstrap_secret_name(pool: str, secret: str) -> str:
    """The Kubernetes Secret holding a kubernetes WorkerPool's bootstrap secret.

    Named after a digest of the secret, so that a rotated secret goes into a new Secret: the
    operator only ever creates Secrets, it never needs to read or change one.
    """
    digest = hashlib.sha256(secret.encode()).hexdigest()[:10]
    return f"{pool[:200]}-vahana-bootstrap-{digest}"
