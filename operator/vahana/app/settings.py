"""One settings tree for the scheduler process, loaded once: flags > environment > defaults.

Every field has a default and says its unit; `validate()` reports every problem with its path.
Environment variables are `VAHANA_<SECTION>_<FIELD>` in upper case, e.g.
`VAHANA_SERVER_PORT=50052`, `VAHANA_SCHEDULER_HEARTBEAT_INTERVAL_SECONDS=5`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vahana.core.options import Flag, flag_of, setting
from vahana.scheduling import records

SECURITY = "security (docs/security.md)"
SERVE = frozenset({"server", "operator"})


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    host: str = setting(
        "127.0.0.1",
        Flag("--host", "listen address (0.0.0.0 for remote workers and in a cluster)", SERVE),
    )
    """Address to listen on; 0.0.0.0 to accept workers from other hosts."""
    port: int = setting(50051, Flag("--port", "gRPC port", shown=(("run", "a free port"),)))
    """gRPC port of WorkerService and TaskService; 0 picks a free port."""


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """TLS of the gRPC port (docs/security.md): all three files for mutual TLS, or none."""

    cert_file: str = setting(
        "",
        Flag("--tls-cert-file", "server certificate chain (PEM)", metavar="FILE", group=SECURITY),
    )
    """PEM certificate chain of the server; reloaded when the file changes."""
    key_file: str = setting(
        "", Flag("--tls-key-file", "its private key (PEM)", metavar="FILE", group=SECURITY)
    )
    """PEM private key of cert_file (unencrypted); reloaded with it."""
    client_ca_file: str = setting(
        "",
        Flag(
            "--tls-client-ca-file",
            "CA of client certificates (PEM); all three: mutual TLS",
            metavar="FILE",
            group=SECURITY,
        ),
    )
    """PEM CA certificate(s) that client (worker, CLI) certificates must be signed by."""
    insecure: bool = setting(
        False, Flag("--insecure", "serve plaintext on a non-loopback address", group=SECURITY)
    )
    """Serve plaintext on a non-loopback address: must be asked for explicitly."""
    bind_worker_certificates: bool = setting(
        False,
        Flag(
            "--bind-worker-certificates",
            "a worker's client certificate must name its worker id or pool (CN)",
            group=SECURITY,
        ),
    )
    """A worker's client certificate must name it: every WorkerService call about a worker
    needs a certificate whose common name is that worker's id or its pool (`<ns>/<name>`)."""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file or self.key_file or self.client_ca_file)


@dataclasses.dataclass(frozen=True)
class AuthSettings:
    """Bearer tokens (docs/security.md): per-worker tokens and an optional client token."""

    bootstrap_token_file: str = setting(
        "",
        Flag(
            "--bootstrap-token-file",
            "secret workers register with; set: worker tokens required",
            metavar="FILE",
            group=SECURITY,
        ),
    )
    """File whose first line is the secret workers present to RegisterWorker; set: every worker
    call needs the worker token RegisterWorker hands out. Empty: no worker authentication."""
    token_lifetime_seconds: float = 86400.0
    """How long a worker token is valid; workers register again before it expires."""
    client_token_file: str = setting(
        "",
        Flag(
            "--client-token-file",
            "token TaskService clients must present",
            metavar="FILE",
            group=SECURITY,
        ),
    )
    """File whose first line is the token TaskService and ListWorkers callers must present;
    empty: those calls need no token (mutual TLS, when on, still applies)."""


_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclasses.dataclass(frozen=True)
class StoreSettings:
    url: str = setting(
        "",
        Flag(
            "--store-url",
            "sqlite:///file.db or postgresql://user@host:port/db",
            SERVE,
            shown=(("server", "SQLite in the state dir"), ("operator", "SQLite in the state dir")),
        ),
    )
    """sqlite:///path/to/file.db or postgresql://…; empty: SQLite in the state directory."""
    state_dir: str = setting(
        ".vahana",
        Flag(
            "--state-dir",
            "store, logs and sandboxes",
            shown=(("run", "a new temporary directory"),),
        ),
    )
    """Directory for the SQLite file, worker logs and sandboxes; one scheduler at a time."""
    standby: bool = setting(
        True,
        Flag(
            "--standby",
            "PostgreSQL store held by another scheduler: wait as a standby, serving nothing, and "
            "take over when that scheduler's session ends; --no-standby: exit 1. A SQLite state "
            "dir never waits: a second scheduler on it exits 1",
            SERVE,
        ),
    )
    """PostgreSQL: while another scheduler holds the store, wait as a standby (serving nothing)
    and take over when its session ends; false: exit 1 at once. SQLite never waits."""
    output_max_bytes: int = 64 << 20
    """Bytes of each task attempt's output kept (`vahana logs`), in <state dir>/task-output;
    past it the output is cut (the status keeps its tail)."""


@dataclasses.dataclass(frozen=True)
class LocalPoolSettings:
    workers: int = setting(
        -1,
        Flag(
            "--workers",
            "local worker processes",
            shown=tuple(
                (c, "one per CPU; 0: none, for remote workers only")
                for c in ("run", "server", "operator")
            ),
        ),
    )
    """Local worker processes to start; -1: one per CPU of this machine; 0: none."""
    tasks_per_worker: int = setting(
        1, Flag("--tasks-per-worker", "tasks each local worker runs at once")
    )
    """Tasks each local worker runs at once."""
    task_timeout_seconds: float = 3600.0
    """Default timeout of a task that sets none."""
    output_dir: str = setting(
        "",
        Flag(
            "--output-dir",
            "where local workers put the tasks' outputFiles",
            frozenset({"run", "server"}),
            shown=(("run", "./outputs"), ("server", "<state dir>/outputs")),
        ),
    )
    """Where local workers put task outputs; empty: <state dir>/outputs (run: ./outputs)."""


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    resync_seconds: float = 2.0
    """How often each embedded WorkerPool (--pool-file) is scaled to its queue."""
    worker_server_address: str = ""
    """How workers of slurm/baremetal pools reach the scheduler (host:port), and the host they
    download the worker from; empty: the address the other workers use (the operator's
    --worker-server-address, else this process's own address)."""
    distribution_port: int = 0
    """HTTP port serving the worker zipapp to remote pools; 0 picks a free port."""
    worker_pyz: str = ""
    """A prebuilt worker zipapp to serve; empty: built from the worker sources on first use."""


@dataclasses.dataclass(frozen=True)
class QueueSettings:
    """Queues of the embedded scheduler (docs/queues.md); the operator reads Queue resources."""

    file: str = setting(
        "",
        Flag(
            "--queue-file",
            "Queue YAML: weights, quotas and borrowing of the queues tasks name in spec.queue "
            "(docs/queues.md)",
            commands=frozenset({"run", "server"}),
            metavar="FILE",
        ),
    )
    """YAML file of Queue objects (weights, quotas, borrowing), read at start; empty: every
    queue has weight 1 and no quota."""


@dataclasses.dataclass(frozen=True)
class MetricsSettings:
    port: int = setting(
        9090,
        Flag(
            "--metrics-port",
            "port of the Prometheus /metrics endpoint (0: off)",
            shown=(("run", "0, off"),),
        ),
    )
    """Port of the Prometheus `/metrics` endpoint; 0 disables it (the default of `vahana run`)."""
    host: str = ""
    """Address the endpoint listens on; empty: the same as server.host."""


@dataclasses.dataclass(frozen=True)
class UiSettings:
    """The web dashboard (docs/dashboard.md): read-only; cancelling needs the client token."""

    enabled: bool = setting(
        False,
        Flag(
            "--ui",
            "serve the web dashboard",
            shown=(("run", "off; --ui-port turns it on"), ("server", "on"), ("operator", "on")),
        ),
    )
    """Serve it. `vahana server` and `vahana operator` turn it on unless told otherwise
    (--no-ui, VAHANA_UI_ENABLED=false); `vahana run` only with --ui."""
    port: int = setting(8080, Flag("--ui-port", "HTTP port of the dashboard (0: a free port)"))
    """HTTP port of the dashboard; 0 picks a free port."""
    host: str = ""
    """Address it listens on; empty: the same as server.host."""
    push_interval_seconds: float = 1.0
    """Live pages get at most one update per this many seconds."""


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    namespaces: str = setting(
        "",
        Flag(
            "--namespace",
            "watch only this namespace (repeatable)",
            frozenset({"operator"}),
            shown=(("operator", "all"),),
            repeat=True,
        ),
    )
    """Comma-separated namespaces to watch; empty: the whole cluster."""
    worker_server_address: str = setting(
        "",
        Flag(
            "--worker-server-address",
            "how pool workers reach this scheduler, e.g. vahana.vahana-system.svc:50051",
            frozenset({"operator"}),
            shown=(("operator", "this process's own address"),),
        ),
    )
    """How workers started by pools reach the scheduler, e.g. vahana.vahana-system.svc:50051;
    empty: this process's own address (fine when workers run on the same host)."""
    worker_namespace: str = "default"
    """Namespace for the Worker objects of workers that belong to no WorkerPool."""
    status_flush_seconds: float = 0.5
    """Coalescing window of Task status writes."""
    worker_metrics_seconds: float = 10.0
    """A Worker object's metrics are written at most this often (state changes at once)."""
    pool_resync_seconds: float = 2.0
    """How often each WorkerPool is scaled to its queue."""
    leader_election: bool = True
    """Act only while holding a Lease, so that of several replicas exactly one acts."""
    lease_namespace: str = ""
    """Namespace of the Lease; empty: $POD_NAMESPACE, else default."""
    lease_name: str = "vahana-operator"
    lease_seconds: float = 15.0
    """A leader that has not renewed the Lease for this long is replaced."""


@dataclasses.dataclass(frozen=True)
class Settings:
    server: ServerSettings = dataclasses.field(default_factory=ServerSettings)
    store: StoreSettings = dataclasses.field(default_factory=StoreSettings)
    scheduler: records.SchedulerSettings = dataclasses.field(
        default_factory=records.SchedulerSettings
    )
    local_pool: LocalPoolSettings = dataclasses.field(default_factory=LocalPoolSettings)
    pools: PoolSettings = dataclasses.field(default_factory=PoolSettings)
    queues: QueueSettings = dataclasses.field(default_factory=QueueSettings)
    operator: OperatorSettings = dataclasses.field(default_factory=OperatorSettings)
    metrics: MetricsSettings = dataclasses.field(default_factory=MetricsSettings)
    ui: UiSettings = dataclasses.field(default_factory=UiSettings)
    tls: TlsSettings = dataclasses.field(default_factory=TlsSettings)
    auth: AuthSettings = dataclasses.field(default_factory=AuthSettings)
    log_level: str = setting(
        "warning",
        Flag(
            "--log-level",
            "how much the scheduler logs",
            choices=("debug", "info", "warning", "error"),
            shown=(("server", "info"), ("operator", "info")),
        ),
    )

    @property
    def state_dir(self) -> Path:
        return Path(self.store.state_dir).expanduser().resolve()

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.state_dir / 'vahana.db'}"

    @property
    def local_workers(self) -> int:
        if self.local_pool.workers >= 0:
            return self.local_pool.workers
        return os.cpu_count() or 1

    def validate(self) -> list[str]:
        problems = []
        if not 0 <= self.server.port <= 65535:
            problems.append(f"server.port: {self.server.port} is not a port (0–65535)")
        if not 0 <= self.metrics.port <= 65535:
            problems.append(f"metrics.port: {self.metrics.port} is not a port (0 disables)")
        if not 0 <= self.ui.port <= 65535:
            problems.append(f"ui.port: {self.ui.port} is not a port (0 picks a free one)")
        if self.ui.push_interval_seconds <= 0:
            problems.append("ui.push_interval_seconds: must be > 0")
        if not self.store_url.startswith(("sqlite://", "postgresql://", "postgres://")):
            problems.append("store.url: use sqlite:///path or postgresql://user@host/db")
        if self.scheduler.heartbeat_interval_seconds <= 0:
            problems.append("scheduler.heartbeat_interval_seconds: must be > 0")
        if self.scheduler.fair_share_half_life_seconds <= 0:
            problems.append("scheduler.fair_share_half_life_seconds: must be > 0 (e.g. 3600)")
        if self.scheduler.usage_save_interval_seconds < 0:
            problems.append("scheduler.usage_save_interval_seconds: must be ≥ 0 (e.g. 30)")
        if self.scheduler.missed_heartbeats < 1:
            problems.append("scheduler.missed_heartbeats: must be ≥ 1")
        if self.local_pool.workers < -1:
            problems.append("local_pool.workers: must be ≥ 0 (or -1: one per CPU)")
        if not 0 <= self.pools.distribution_port <= 65535:
            port = self.pools.distribution_port
            problems.append(f"pools.distribution_port: {port} is not a port (0–65535)")
        if self.pools.resync_seconds <= 0:
            problems.append("pools.resync_seconds: must be > 0")
        if self.local_pool.tasks_per_worker < 1:
            problems.append("local_pool.tasks_per_worker: must be ≥ 1")
        if self.queues.file and not os.access(self.queues.file, os.R_OK):
            problems.append(f"queues.file: cannot read {self.queues.file}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            problems.append("log_level: use debug, info, warning or error")
        return problems + self.security_problems()

    def security_problems(self) -> list[str]:
        """Problems of the tls and auth sections: partial TLS, unreadable files, plaintext on a
        non-loopback address without tls.insecure."""
        problems = []
        tls = self.tls
        files = {"cert_file": tls.cert_file, "key_file": tls.key_file}
        files["client_ca_file"] = tls.client_ca_file
        if tls.enabled:
            given = " and ".join(f"tls.{name}" for name, path in files.items() if path)
            for name, path in files.items():
                if not path:
                    problems.append(
                        f"tls.{name}: required with {given} — mutual TLS needs tls.cert_file, "
                        "tls.key_file and tls.client_ca_file"
                    )
        elif self.server.host not in _LOOPBACK and not tls.insecure:
            problems.append(
                f"tls: serving plaintext on {self.server.host or 'every address'} needs "
                "tls.insecure=true (--insecure); or give tls.cert_file, tls.key_file and "
                "tls.client_ca_file for mutual TLS"
            )
        if tls.bind_worker_certificates and not tls.enabled:
            problems.append(
                "tls.bind_worker_certificates: needs mutual TLS — give tls.cert_file, "
                "tls.key_file and tls.client_ca_file, or leave it off"
            )
        named = {f"tls.{name}": path for name, path in files.items()}
        named["auth.bootstrap_token_file"] = self.auth.bootstrap_token_file
        named["auth.client_token_file"] = self.auth.client_token_file
        for name, path in named.items():
            if path and not os.access(path, os.R_OK):
                problems.append(f"{name}: cannot read {path}")
        if self.auth.token_lifetime_seconds <= 0:
            problems.append("auth.token_lifetime_seconds: must be > 0")
        return problems


@dataclasses.dataclass(frozen=True)
class Described:
    """One setting as the command line and the environment see it."""

    path: str
    """Dotted path, e.g. `server.port`: the key of `load`'s overrides."""
    env: str
    """Its environment variable, e.g. VAHANA_SERVER_PORT."""
    default: Any
    kind: type
    flag: Flag | None


def described() -> list[Described]:
    """Every setting, in declaration order: the one list flags, --help and `load` are made of."""
    found = []
    defaults = Settings()
    for section in dataclasses.fields(Settings):
        value = getattr(defaults, section.name)
        if not dataclasses.is_dataclass(value):
            env = f"VAHANA_{section.name.upper()}"
            found.append(Described(section.name, env, value, type(value), flag_of(section)))
            continue
        assert not isinstance(value, type)  # an instance: Settings() holds no classes
        for field in dataclasses.fields(value):
            default = getattr(value, field.name)
            found.append(
                Described(
                    f"{section.name}.{field.name}",
                    f"VAHANA_{section.name}_{field.name}".upper(),
                    default,
                    type(default),
                    flag_of(field),
                )
            )
    return found


def load(overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Builds settings from defaults, then `VAHANA_*` variables, then `overrides`.

    `overrides` maps dotted paths (`server.port`) to values; None means "not given".
    """
    environ = os.environ if environ is None else environ
    given: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for item in described():
        raw = overrides.get(item.path)
        if raw is None and item.env in environ:
            raw = environ[item.env]
        if raw is None:
            continue
        section, _, name = item.path.rpartition(".")
        value = _coerce(raw, item.kind, item.env)
        if section:
            given.setdefault(section, {})[name] = value
        else:
            top[name] = value
    defaults = Settings()
    sections = {
        name: dataclasses.replace(getattr(defaults, name), **values)
        for name, values in given.items()
    }
    return Settings(**sections, **top)


def _coerce(raw: Any, kind: type, source: str) -> Any:
    if isinstance(raw, kind):
        return raw
    try:
        if kind is bool:
            return str(raw).lower() in ("1", "true", "yes", "on")
        return kind(raw)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {raw!r} is not a valid {kind.__name__}") from error
