"""The worker's settings: one frozen dataclass, loaded once from flags > environment > defaults.

Every option is declared once: its default in the `Settings` field, its flag, environment
variable and help in `OPTIONS` (`shown_default` renders the field's default for --help); the CLI
builds its parser from that table and `load()` converts and validates the values, reporting every
error with the name of the field it concerns. The seed's variables keep their plain names
(SERVER_ADDRESS, WORKER_ID, ...); options Vahana added read `VAHANA_WORKER_<NAME>`.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import pwd
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vahana_worker import durations, limits, outputlog, sizes, storage, sysmetrics

ENV_PREFIX = "VAHANA_WORKER_"
MAX_TASKS_PER_CALL = 1000
"""The most tasks one poll or report may ask for (the scheduler refuses more): slots plus
prefetch must stay within it."""


class SettingsError(ValueError):
    """One or more settings are invalid; `errors` lists them as "field: problem"."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


@dataclasses.dataclass(frozen=True)
class Settings:
    server_address: str = "localhost:50051"
    """host:port of the scheduler's WorkerService."""
    worker_id: str = ""
    """Unique id of this worker; default `<hostname>-<8 hex>`."""
    working_dir: str = "/tmp/vahana-worker"
    """Directory holding the per-task sandboxes (`<working_dir>/tasks/<task>-a<attempt>`)."""
    heartbeat_interval: float = 30.0
    """Seconds between heartbeats (the scheduler may override it when registering)."""
    task_timeout: float = 3600.0
    """Seconds a task may run when the task sets no timeout of its own."""
    log_level: str = "info"
    experiment_id: str = ""
    compute_resource_id: str = ""
    grpc_keepalive_time: float = 30.0
    """Seconds between gRPC keepalive pings."""
    grpc_keepalive_timeout: float = 10.0
    """Seconds to wait for a keepalive ping's answer."""
    grpc_keepalive_permit_without_streams: bool = True
    max_tasks: int = 1
    """Task slots: how many tasks run at once."""
    prefetch: int = 8
    """Tasks held queued behind the running ones while these are short, so that one call to
    the scheduler carries several results and brings several tasks; 0: none."""
    prefetch_wait: float = 1.0
    """Seconds a queued task may wait for a slot before it is handed back to the scheduler;
    also how short tasks must be for the worker to queue any."""
    cpu_cores: float = 0.0
    """CPU cores offered; default: the CPUs this process may use."""
    memory_bytes: int = 0
    """Memory offered in bytes; default: the host's total memory."""
    gpus: int = 0
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    pool: str = ""
    output_limit: int = 65536
    """Bytes of a task's combined output kept (the tail) and reported."""
    stream_output: bool = True
    """Send tasks' whole output to the scheduler while they run (`vahana logs [-f]`)."""
    output_keep: int = 64 << 20
    """Bytes of each task's output sent while it runs (the rest: only its tail)."""
    poll_wait: float = 20.0
    """Seconds the scheduler may hold a PollForTask call open."""
    drain_timeout: float = 30.0
    """Seconds running tasks get to finish on shutdown before they are killed."""
    kill_grace: float = 2.0
    """Seconds a task's processes get between SIGTERM and SIGKILL when the task ends."""
    allocation_ends_at: float | None = None
    """Unix time when the worker's allocation (walltime) ends; None if never."""
    keep_sandboxes: bool = False
    """Keep task sandboxes after the task ends (for debugging)."""
    exit_with_parent: bool = False
    """Drain and exit when the process that started the worker dies (local pools)."""
    metrics_port: int = 0
    """Port of a Prometheus /metrics endpoint for this worker; 0: none."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics endpoint listens on (0.0.0.0 to be scraped from other hosts)."""
    output_dir: str = ""
    """Directory output destinations must lie in; default `<working_dir>/outputs`."""
    task_user: str = ""
    """User (name or uid) tasks run as; the worker must be root. Empty: the worker's own."""
    task_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Variables every task gets (e.g. PATH); tasks never see the worker's own environment."""
    limit_cpu_time: float = 0.0
    """Default CPU-time limit of each task process, seconds (rounded up); 0: none."""
    limit_memory: int = 0
    """Default memory limit of a task, bytes (its cgroup, else RLIMIT_AS per process); 0: none."""
    limit_processes: int = 0
    """Default process limit (its cgroup, else RLIMIT_NPROC: per user id); 0: none."""
    limit_open_files: int = 0
    """Default open-descriptor limit of each task process; 0: none."""
    limit_file_size: int = 0
    """Default largest file a task process may write, bytes; 0: none."""
    cgroups: str = "auto"
    """"auto": a cgroup per task where the worker may create them — it tracks all the task's
    processes and holds its memory and process limits (else setrlimit); "off": none (a task's
    processes are found by their VAHANA_TASK marker)."""
    cgroup_root: str = ""
    """A delegated cgroup v2 directory for the task cgroups; default: the worker's own."""
    tls_ca_file: str = ""
    """PEM CA certificate of the scheduler's certificate; set (or a client cert): use TLS."""
    tls_cert_file: str = ""
    """PEM client certificate presented to the scheduler (mutual TLS)."""
    tls_key_file: str = ""
    """PEM private key of tls_cert_file."""
    bootstrap_token_file: str = ""
    """File whose first line is the pool's bootstrap secret, exchanged for a worker token."""
    bootstrap_token: str = dataclasses.field(default="", repr=False)
    """The bootstrap secret itself (environment only); the file wins when both are given."""
    s3_endpoint: str = ""
    """http(s)://host:port of the S3-compatible service of s3:// URLs; empty: AWS's."""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = dataclasses.field(default="", repr=False)
    """S3 access key (environment only, set by the worker's pool)."""
    s3_secret_access_key: str = dataclasses.field(default="", repr=False)
    """S3 secret key (environment only, set by the worker's pool)."""
    sftp_user: str = ""
    """Login for sftp:// URLs that name none; empty: the worker's user."""
    sftp_key_file: str = ""
    """Private key for sftp:// hosts; empty: sftp_key, else the user's ~/.ssh keys."""
    sftp_key: str = dataclasses.field(default="", repr=False)
    """The private key itself, PEM (environment only, set by the worker's pool)."""
    sftp_known_hosts_file: str = ""
    """known_hosts for sftp:// hosts; empty: sftp_known_hosts, else ~/.ssh/known_hosts."""
    sftp_known_hosts: str = ""
    """known_hosts lines themselves (environment only, set by the worker's pool)."""
    transfer_attempts: int = 3
    """Tries of one storage transfer when the store is unreachable or the connection drops."""
    transfer_backoff: float = 0.5
    """Seconds before a transfer's second try; doubled before each next one."""
    task_output_url: str = ""
    """s3:// or sftp:// prefix under which each task attempt's whole output (up to
    output_keep) is kept when it ends: <prefix><task id>/attempt-<n>.log. Empty: none."""

    @functools.cached_property  # asked for every task; the settings never change
    def stores(self) -> storage.StorageConfig:
        """How tasks' s3:// and sftp:// inputs and outputs are reached."""
        return storage.StorageConfig(
            s3_endpoint=self.s3_endpoint,
            s3_region=self.s3_region,
            s3_access_key_id=self.s3_access_key_id,
            s3_secret_access_key=self.s3_secret_access_key,
            sftp_user=self.sftp_user,
            sftp_key=self.sftp_key,
            sftp_key_file=self.sftp_key_file,
            sftp_known_hosts=self.sftp_known_hosts,
            sftp_known_hosts_file=self.sftp_known_hosts_file,
            attempts=self.transfer_attempts,
            backoff=self.transfer_backoff,
            timeout=self.task_timeout,
        )

    def task_user_ids(self) -> tuple[int, int] | None:
        """(uid, gid) of task_user, None when tasks run as the worker; ValueError if unknown."""
        if not self.task_user.strip():
            return None
        try:
            entry = (
                pwd.getpwuid(int(self.task_user))
                if self.task_user.isdigit()
                else pwd.getpwnam(self.task_user)
            )
        except KeyError:
            raise ValueError(f"no such user {self.task_user!r}") from None
        return entry.pw_uid, entry.pw_gid

    @functools.cached_property
    def task_limits(self) -> limits.Limits:
        """The worker's default limits, for tasks that set none of their own."""
        return limits.Limits(
            cpu_seconds=limits.cpu_seconds_of(self.limit_cpu_time),
            memory_bytes=self.limit_memory,
            processes=self.limit_processes,
            open_files=self.limit_open_files,
            file_size_bytes=self.limit_file_size,
        )

    def validate(self) -> list[str]:
        """Returns every problem as "field: problem" (empty if the settings are usable)."""
        errors: list[str] = []
        if not self.server_address.strip():
            errors.append("server_address: must not be empty")
        if not self.worker_id.strip():
            errors.append("worker_id: must not be empty")
        if not self.working_dir.strip():
            errors.append("working_dir: must not be empty")
        for name in (
            "heartbeat_interval",
            "task_timeout",
            "grpc_keepalive_time",
            "grpc_keepalive_timeout",
            "poll_wait",
        ):
            if getattr(self, name) <= 0:
                errors.append(f"{name}: must be > 0")
        if self.drain_timeout < 0:
            errors.append("drain_timeout: must be >= 0")
        if self.kill_grace < 0:
            errors.append("kill_grace: must be >= 0")
        if self.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            errors.append("log_level: must be one of debug, info, warning, error, critical")
        if self.max_tasks < 1:
            errors.append("max_tasks: must be >= 1")
        if self.prefetch < 0:
            errors.append("prefetch: must be >= 0 (0: none)")
        elif self.max_tasks + self.prefetch > MAX_TASKS_PER_CALL:
            errors.append(
                f"prefetch: max_tasks + prefetch must be at most {MAX_TASKS_PER_CALL}"
                " (the most one call to the scheduler may ask for)"
            )
        if self.prefetch_wait <= 0:
            errors.append("prefetch_wait: must be > 0")
        if self.cpu_cores <= 0:
            errors.append("cpu_cores: must be > 0")
        if self.memory_bytes < 0:
            errors.append("memory_bytes: must be >= 0")
        if self.gpus < 0:
            errors.append("gpus: must be >= 0")
        if self.output_limit < 0:
            errors.append("output_limit: must be >= 0")
        if self.task_output_url:
            try:
                outputlog.check_prefix(self.task_output_url)
            except ValueError as exc:
                errors.append(f"task_output_url: {exc}")
        try:
            user = self.task_user_ids()
        except ValueError as exc:
            errors.append(f"task_user: {exc}")
        else:
            if user is not None and os.geteuid() != 0 and user[0] != os.geteuid():
                errors.append("task_user: the worker must run as root to run tasks as another user")
        for name in (
            "limit_cpu_time",
            "limit_memory",
            "limit_processes",
            "limit_open_files",
            "limit_file_size",
        ):
            if getattr(self, name) < 0:
                errors.append(f"{name}: must be >= 0 (0: no limit)")
        if self.cgroups not in ("auto", "off"):
            errors.append("cgroups: must be auto or off")
        if not 0 <= self.metrics_port <= 65535:
            errors.append("metrics_port: must be a port (1-65535), or 0 for none")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            missing = "tls_key_file" if self.tls_cert_file else "tls_cert_file"
            errors.append(f"{missing}: required with the other (a client certificate needs both)")
        if self.s3_endpoint and not self.s3_endpoint.startswith(("http://", "https://")):
            errors.append(f"s3_endpoint: {self.s3_endpoint!r} must start with http:// or https://")
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            errors.append("s3_secret_access_key: give the access key id and the secret together")
        if self.transfer_attempts < 1:
            errors.append("transfer_attempts: must be at least 1")
        for name in (
            "tls_ca_file",
            "tls_cert_file",
            "tls_key_file",
            "bootstrap_token_file",
            "sftp_key_file",
            "sftp_known_hosts_file",
        ):
            path = getattr(self, name)
            if path and not os.access(path, os.R_OK):
                errors.append(f"{name}: cannot read {path}")
        return errors

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_ca_file or self.tls_cert_file)


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting as the user sees it: flag, environment variable, default and help."""

    field: str
    flag: str
    env: str
    help: str
    kind: str = "str"  # str, duration, int, float, size, bool, labels, time
    metavar: str | None = None
    shown: str | None = None
    """The default as --help says it, only where the field's default is worked out when the
    settings are loaded (the host's CPUs, `<hostname>-<8 hex>`); else the field's own default
    is shown (`shown_default`), so no default is written twice."""


def shown_default(option: Option) -> str:
    """The default as --help says it: the field's own, written the way the flag takes it."""
    if option.shown is not None:
        return option.shown
    value = getattr(Settings(), option.field)
    if value is None:
        text = "none"
    elif option.kind == "duration":
        text = durations.format_duration(value)
    elif option.kind == "bool":
        text = "true" if value else "false"
    elif option.kind == "labels":
        text = ",".join(f"{key}={item}" for key, item in value.items())
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return text or "empty"


def _env(name: str) -> str:
    return ENV_PREFIX + name


OPTIONS: tuple[Option, ...] = (
    Option("server_address", "--server-address", "SERVER_ADDRESS", "scheduler address host:port"),
    Option("worker_id", "--worker-id", "WORKER_ID", "unique worker id", shown="<hostname>-<8 hex>"),
    Option("working_dir", "--working-dir", "WORKING_DIR", "directory for task sandboxes"),
    Option(
        "heartbeat_interval",
        "--heartbeat-interval",
        "HEARTBEAT_INTERVAL",
        "time between heartbeats (the scheduler may override it)",
        kind="duration",
    ),
    Option(
        "task_timeout",
        "--task-timeout",
        "TASK_TIMEOUT",
        "timeout of tasks that set none",
        kind="duration",
    ),
    Option("log_level", "--log-level", "LOG_LEVEL", "debug, info, warning or error"),
    Option("experiment_id", "--experiment-id", "EXPERIMENT_ID", "experiment this worker serves"),
    Option(
        "compute_resource_id",
        "--compute-resource-id",
        "COMPUTE_RESOURCE_ID",
        "compute resource this worker runs on",
    ),
    Option(
        "grpc_keepalive_time",
        "",
        "GRPC_KEEPALIVE_TIME",
        "gRPC keepalive ping interval",
        kind="duration",
    ),
    Option(
        "grpc_keepalive_timeout",
        "",
        "GRPC_KEEPALIVE_TIMEOUT",
        "gRPC keepalive ping timeout",
        kind="duration",
    ),
    Option(
        "grpc_keepalive_permit_without_streams",
        "",
        "GRPC_KEEPALIVE_PERMIT_WITHOUT_STREAMS",
        "send keepalive pings with no call in flight",
        kind="bool",
    ),
    Option(
        "max_tasks", "--max-tasks", _env("MAX_TASKS"), "task slots: tasks run at once", kind="int"
    ),
    Option(
        "prefetch",
        "--prefetch",
        _env("PREFETCH"),
        "tasks held queued behind the running ones while tasks are short (0: none)",
        kind="int",
    ),
    Option(
        "prefetch_wait",
        "--prefetch-wait",
        _env("PREFETCH_WAIT"),
        "longest a queued task waits for a slot before it is handed back; only as many "
        "tasks are queued as should start within half of it",
        kind="duration",
    ),
    Option(
        "cpu_cores",
        "--cpu-cores",
        _env("CPU_CORES"),
        "CPU cores offered",
        kind="float",
        shown="CPUs available to the process",
    ),
    Option(
        "memory_bytes",
        "--memory",
        _env("MEMORY"),
        "memory offered, bytes or with suffix Ki/Mi/Gi/K/M/G",
        kind="size",
        shown="host total memory",
    ),
    Option("gpus", "--gpus", _env("GPUS"), "GPUs offered", kind="int"),
    Option(
        "labels",
        "--label",
        _env("LABELS"),
        "label key=value offered to task requirements; repeatable "
        "(env: comma-separated key=value list)",
        kind="labels",
        metavar="KEY=VALUE",
    ),
    Option("pool", "--pool", _env("POOL"), "name of the worker pool this worker belongs to"),
    Option(
        "output_limit",
        "--output-limit",
        _env("OUTPUT_LIMIT"),
        "bytes of task output (tail) kept and reported",
        kind="size",
    ),
    Option(
        "stream_output",
        "",
        _env("STREAM_OUTPUT"),
        "send tasks' whole output to the scheduler while they run (vahana logs -f); false: "
        "only the tail, at the end",
        kind="bool",
    ),
    Option(
        "output_keep",
        "--output-keep",
        _env("OUTPUT_KEEP"),
        "bytes of each task's output sent while it runs",
        kind="size",
    ),
    Option(
        "poll_wait",
        "--poll-wait",
        _env("POLL_WAIT"),
        "how long the scheduler may hold a poll open",
        kind="duration",
    ),
    Option(
        "drain_timeout",
        "--drain-timeout",
        _env("DRAIN_TIMEOUT"),
        "time running tasks get to finish on shutdown",
        kind="duration",
    ),
    Option(
        "kill_grace",
        "--kill-grace",
        _env("KILL_GRACE"),
        "time a task's processes get between SIGTERM and SIGKILL when the task ends (completed, "
        "failed, timed out or cancelled: what it left running goes too)",
        kind="duration",
    ),
    Option(
        "walltime",
        "--walltime",
        _env("WALLTIME"),
        "allocation length from now (sets the allocation end)",
        kind="duration",
        shown="none",
    ),
    Option(
        "allocation_ends_at",
        "--allocation-ends-at",
        _env("ALLOCATION_ENDS_AT"),
        "when the allocation ends: RFC 3339 time or Unix seconds",
        kind="time",
    ),
    Option(
        "keep_sandboxes",
        "--keep-sandboxes",
        _env("KEEP_SANDBOXES"),
        "keep task sandboxes after tasks end",
        kind="bool",
    ),
    Option(
        "exit_with_parent",
        "--exit-with-parent",
        _env("EXIT_WITH_PARENT"),
        "drain and exit when the parent process dies (Linux)",
        kind="bool",
    ),
    Option(
        "metrics_port",
        "--metrics-port",
        _env("METRICS_PORT"),
        "serve Prometheus metrics at http://HOST:PORT/metrics; 0: off",
        kind="int",
    ),
    Option(
        "metrics_host", "--metrics-host", _env("METRICS_HOST"), "address of the metrics endpoint"
    ),
    Option(
        "output_dir",
        "--output-dir",
        _env("OUTPUT_DIR"),
        "directory task output destinations must lie in (relative ones are taken from it)",
        shown="<working-dir>/outputs",
    ),
    Option(
        "task_user",
        "--task-user",
        _env("TASK_USER"),
        "user (name or uid) tasks run as; needs a root worker; makes --limit-processes count "
        "that user's processes, not the worker's",
        shown="the worker's user",
    ),
    Option(
        "task_env",
        "--task-env",
        _env("TASK_ENV"),
        "variable every task gets, e.g. PATH=/opt/bin:/usr/bin:/bin; repeatable (env: "
        "comma-separated); tasks never see the worker's own environment",
        kind="labels",
        metavar="NAME=VALUE",
    ),
    Option(
        "limit_cpu_time",
        "--limit-cpu-time",
        _env("LIMIT_CPU_TIME"),
        "default CPU-time limit of each task process (RLIMIT_CPU)",
        kind="duration",
        shown="none",
    ),
    Option(
        "limit_memory",
        "--limit-memory",
        _env("LIMIT_MEMORY"),
        "default memory limit of a task: its processes together in its cgroup, else the "
        "address space of each (RLIMIT_AS), e.g. 2Gi",
        kind="size",
        shown="none",
    ),
    Option(
        "limit_processes",
        "--limit-processes",
        _env("LIMIT_PROCESSES"),
        "default process limit: the task's processes in its cgroup, else RLIMIT_NPROC "
        "(counts every process of the user id, not enforced for root)",
        kind="int",
        shown="none",
    ),
    Option(
        "limit_open_files",
        "--limit-open-files",
        _env("LIMIT_OPEN_FILES"),
        "default open-files limit of each task process (RLIMIT_NOFILE)",
        kind="int",
        shown="none",
    ),
    Option(
        "limit_file_size",
        "--limit-file-size",
        _env("LIMIT_FILE_SIZE"),
        "default largest file a task process may write (RLIMIT_FSIZE), e.g. 10Gi",
        kind="size",
        shown="none",
    ),
    Option(
        "cgroups",
        "--cgroups",
        _env("CGROUPS"),
        "auto: a cgroup per task where the worker may create them, holding all its processes "
        "and its memory and process limits; off: none (a task's processes are found by their "
        "VAHANA_TASK marker, its limits use setrlimit)",
    ),
    Option(
        "cgroup_root",
        "--cgroup-root",
        _env("CGROUP_ROOT"),
        "delegated cgroup v2 directory for task cgroups (e.g. under a systemd unit with "
        "Delegate=yes)",
        shown="the worker's own cgroup",
    ),
    Option(
        "tls_ca_file",
        "--tls-ca-file",
        _env("TLS_CA_FILE"),
        "CA certificate (PEM) of the scheduler's certificate; set: connect with TLS",
    ),
    Option(
        "tls_cert_file",
        "--tls-cert-file",
        _env("TLS_CERT_FILE"),
        "client certificate (PEM) for mutual TLS",
    ),
    Option("tls_key_file", "--tls-key-file", _env("TLS_KEY_FILE"), "its private key (PEM)"),
    Option(
        "bootstrap_token_file",
        "--bootstrap-token-file",
        _env("BOOTSTRAP_TOKEN_FILE"),
        "file holding the pool's bootstrap secret, exchanged at registration for a worker token",
    ),
    Option(
        "bootstrap_token",
        "",
        _env("BOOTSTRAP_TOKEN"),
        "the pool's bootstrap secret itself (never passed to tasks)",
    ),
    Option(
        "s3_endpoint",
        "--s3-endpoint",
        _env("S3_ENDPOINT"),
        "http(s)://host:port of the S3-compatible service for s3:// inputs and outputs",
        shown="AWS's for the region",
    ),
    Option("s3_region", "--s3-region", _env("S3_REGION"), "region of s3:// URLs"),
    Option("s3_access_key_id", "", _env("S3_ACCESS_KEY_ID"), "S3 access key id"),
    Option("s3_secret_access_key", "", _env("S3_SECRET_ACCESS_KEY"), "S3 secret key"),
    Option(
        "sftp_user",
        "--sftp-user",
        _env("SFTP_USER"),
        "login for sftp:// URLs that name none",
        shown="the worker's user",
    ),
    Option("sftp_key_file", "--sftp-key-file", _env("SFTP_KEY_FILE"), "private key for sftp://"),
    Option("sftp_key", "", _env("SFTP_KEY"), "the private key for sftp:// itself (PEM)"),
    Option(
        "sftp_known_hosts_file",
        "--sftp-known-hosts-file",
        _env("SFTP_KNOWN_HOSTS_FILE"),
        "known_hosts for sftp:// hosts",
        shown="~/.ssh/known_hosts",
    ),
    Option("sftp_known_hosts", "", _env("SFTP_KNOWN_HOSTS"), "known_hosts lines for sftp://"),
    Option(
        "transfer_attempts",
        "--transfer-attempts",
        _env("TRANSFER_ATTEMPTS"),
        "tries of a storage transfer when the store is unreachable",
        kind="int",
    ),
    Option(
        "transfer_backoff",
        "--transfer-backoff",
        _env("TRANSFER_BACKOFF"),
        "wait before a transfer's second try, doubled after",
        kind="duration",
    ),
    Option(
        "task_output_url",
        "--task-output-url",
        _env("TASK_OUTPUT_URL"),
        "s3:// or sftp:// prefix where each task's whole output is kept when it ends "
        "(<prefix><task id>/attempt-<n>.log, up to --output-keep)",
        shown="none",
    ),
)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"invalid boolean {text!r}: use true or false")


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid label {item!r}: use key=value")
        labels[key.strip()] = value.strip()
    return labels


def parse_time(text: str) -> float:
    """Unix seconds from Unix seconds or an RFC 3339 / ISO 8601 time (UTC if no zone)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid time {text!r}: use RFC 3339 or Unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "duration": durations.parse_duration,
    "int": int,
    "float": float,
    "size": sizes.parse_size,
    "bool": parse_bool,
    "time": parse_time,
}


def _raw_value(option: Option, flags: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """The flag's value if given, else the environment's, else None."""
    value = flags.get(option.field)
    if value is not None and value != []:
        return value
    return env.get(option.env)


def load(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    *,
    now: Callable[[], float] = time.time,
) -> Settings:
    """Builds validated Settings: `flags` (field → value or None) override `env`, then defaults.

    Raises SettingsError naming every field that is wrong.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    errors: list[str] = []
    for option in OPTIONS:
        raw = _raw_value(option, flags, env)
        if raw is None:
            continue
        try:
            if option.kind == "labels":
                items = raw if isinstance(raw, list) else [p for p in raw.split(",") if p.strip()]
                values[option.field] = parse_labels(items)
            elif isinstance(raw, bool):
                values[option.field] = raw
            else:
                values[option.field] = _CONVERTERS[option.kind](str(raw))
        except ValueError as exc:
            source = option.flag or option.env
            errors.append(f"{option.field}: {exc} (from {source})")
    walltime = values.pop("walltime", None)
    if walltime is not None:
        if "allocation_ends_at" in values:
            errors.append("walltime: give either walltime or allocation_ends_at, not both")
        else:
            values["allocation_ends_at"] = now() + walltime
    values.setdefault("worker_id", default_worker_id())
    if "cpu_cores" not in values:
        values["cpu_cores"] = sysmetrics.cpu_count()
    if "memory_bytes" not in values:
        values["memory_bytes"] = sysmetrics.memory().total_bytes
    settings = Settings(**values)
    errors.extend(settings.validate())
    if errors:
        raise SettingsError(errors)
    return settings
