"""The shell scripts that start a worker on a SLURM node or a bare-metal host: pure renderers.

Both scripts share one body: export the seed's environment (WORKER_ID, SERVER_ADDRESS,
WORKING_DIR, WORKER_BINARY_URL), make and enter the working directory, download the worker
zipapp, verify its sha256 before running it, start `python3 worker.pyz --server-address=...`.
The SLURM script adds `#SBATCH` lines and reads the job's end time from `scontrol`; the
bare-metal one adds `timeout` walltime, a watcher that stops the worker when the ssh
connection ends, and a trap that kills only this worker's own process group and removes its
working directory.

Every value from a spec is `shlex.quote`d. `#SBATCH` lines are parsed by sbatch, not by a
shell, so their values must also be plain words (`SBATCH_WORD`); anything else is refused.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections.abc import Mapping, Sequence

from vahana.pools import base, credentials, stores

SBATCH_WORD = re.compile(r"[A-Za-z0-9_.,:+=@%/-]+")
"""What a value on an `#SBATCH` line may hold (no spaces, quotes, newlines or `#`)."""
SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")


@dataclasses.dataclass(frozen=True)
class Launch:
    """One worker to start: everything its script needs."""

    worker_id: str
    pool: str
    server_address: str
    binary_url: str
    binary_sha256: str
    working_dir: str
    """Base directory on the node; the worker's own is `<working_dir>/<worker_id>`."""
    heartbeat_interval_seconds: float = 30.0
    tasks_per_worker: int = 1
    cpu_cores: float = 0.0
    memory_bytes: int = 0
    gpus: int = 0
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    walltime_seconds: float | None = None
    drain_seconds: float = 30.0
    python: str = "python3"
    bootstrap_token: str = dataclasses.field(default="", repr=False)
    """The pool's bootstrap secret, exported to the worker; empty when none is needed."""
    tls: credentials.WorkerTls | None = None
    """The worker's mutual-TLS files on the node; None: plaintext."""
    storage_env: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    """The pool's storage settings and credentials (`stores.worker_env`), exported."""

    @property
    def worker_dir(self) -> str:
        return f"{self.working_dir.rstrip('/') or '/'}/{self.worker_id}"


def launch_template(context: base.PoolContext, working_dir: str) -> Launch:
    """A pool's launch settings; each start fills in its own worker_id."""
    kind = context.spec.get("type", "")
    tls = credentials.worker_tls(
        context.spec.get(kind) or {}, f"spec.{kind}.tls", required=context.tls_required
    )
    if not context.worker_binary_url:
        raise ValueError(
            f"{context.spec.get('type')} pools need the worker zipapp served (WORKER_BINARY_URL)"
        )
    return Launch(
        worker_id="",
        pool=context.key,
        server_address=context.remote_server_address or context.server_address,
        binary_url=context.worker_binary_url,
        binary_sha256=context.worker_binary_sha256,
        working_dir=working_dir,
        heartbeat_interval_seconds=context.heartbeat_interval_seconds,
        tasks_per_worker=int(context.spec["tasksPerWorker"]),
        cpu_cores=context.capacity.cpu_cores,
        memory_bytes=context.capacity.memory_bytes,
        gpus=context.capacity.gpus,
        labels=dict(context.capacity.labels),
        walltime_seconds=context.walltime_seconds,
        drain_seconds=context.drain_timeout_seconds,
        bootstrap_token=context.bootstrap_secret,
        tls=tls,
        storage_env=stores.worker_env(context.spec),
    )


def check_id(worker_id: str) -> str:
    if not SAFE_ID.fullmatch(worker_id):
        raise ValueError(f"worker id {worker_id!r}: letters, digits, '.', '_' and '-' only")
    return worker_id


def worker_args(launch: Launch) -> list[str]:
    """The worker's command-line flags (not yet quoted)."""
    args = [
        f"--server-address={launch.server_address}",
        f"--worker-id={launch.worker_id}",
        f"--working-dir={launch.worker_dir}",
        f"--heartbeat-interval={launch.heartbeat_interval_seconds:g}s",
        f"--max-tasks={launch.tasks_per_worker}",
        f"--pool={launch.pool}",
        f"--drain-timeout={launch.drain_seconds:g}s",
    ]
    if launch.cpu_cores > 0:
        args.append(f"--cpu-cores={launch.cpu_cores:g}")
    if launch.memory_bytes > 0:
        args.append(f"--memory={launch.memory_bytes}")
    if launch.gpus:
        args.append(f"--gpus={launch.gpus}")
    args.extend(f"--label={key}={value}" for key, value in sorted(launch.labels.items()))
    if launch.tls is not None:
        args.extend(launch.tls.args())
    return args


def _prologue(launch: Launch) -> list[str]:
    """Environment, working directory, download and checksum: shared by both scripts."""
    q = shlex.quote
    if not re.fullmatch(r"[0-9a-f]{64}", launch.binary_sha256):
        raise ValueError("the worker zipapp's sha256 must be 64 hex digits")
    return [
        f"export WORKER_ID={q(check_id(launch.worker_id))}",
        f"export SERVER_ADDRESS={q(launch.server_address)}",
        f"export WORKING_DIR={q(launch.worker_dir)}",
        f"export WORKER_BINARY_URL={q(launch.binary_url)}",
        f"export HEARTBEAT_INTERVAL={q(f'{launch.heartbeat_interval_seconds:g}s')}",
        *(
            # The worker reads it from its environment and never passes it on to tasks.
            [f"export {credentials.BOOTSTRAP_ENV}={q(launch.bootstrap_token)}"]
            if launch.bootstrap_token
            else []
        ),
        # Storage credentials likewise: the worker's own, never its tasks'.
        *(f"export {name}={q(value)}" for name, value in sorted(launch.storage_env.items())),
        f"WORKER_SHA256={q(launch.binary_sha256)}",
        f"PYTHON={q(launch.python)}",
        'export SHIV_ROOT="$WORKING_DIR/.shiv"',
        'mkdir -p -- "$WORKING_DIR"',
        'cd -- "$WORKING_DIR"',
        "if command -v curl >/dev/null 2>&1; then",
        '  curl -fsS --retry 3 -o worker.pyz -- "$WORKER_BINARY_URL"',
        "else",
        '  "$PYTHON" -c \'import sys, urllib.request; '
        'urllib.request.urlretrieve(sys.argv[1], sys.argv[2])\' "$WORKER_BINARY_URL" worker.pyz',
        "fi",
        'if ! echo "$WORKER_SHA256  worker.pyz" | sha256sum -c --status -; then',
        '  echo "worker.pyz from $WORKER_BINARY_URL does not match sha256 $WORKER_SHA256" >&2',
        "  exit 3",
        "fi",
    ]


def _command(launch: Launch, extra: Sequence[str] = ()) -> str:
    return shlex.join([*worker_args(launch), *extra])


def slurm_time(seconds: float) -> str:
    """sbatch --time as hours:minutes:seconds (SLURM rounds up to whole minutes)."""
    total = max(60, math.ceil(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def sbatch_script(
    launch: Launch,
    *,
    partition: str = "",
    account: str = "",
    qos: str = "",
) -> str:
    """The batch script of one pilot worker (fed to `sbatch` on stdin)."""
    options = [f"--job-name=worker_{check_id(launch.worker_id)}"]
    if launch.walltime_seconds:
        options.append(f"--time={slurm_time(launch.walltime_seconds)}")
    options.append(f"--cpus-per-task={max(1, math.ceil(launch.cpu_cores or 1))}")
    if launch.memory_bytes > 0:
        options.append(f"--mem={max(1, math.ceil(launch.memory_bytes / 2**20))}M")
    for flag, value in (("partition", partition), ("account", account), ("qos", qos)):
        if value:
            if not SBATCH_WORD.fullmatch(value):
                raise ValueError(f"spec.slurm.{flag}: {value!r} is not a plain word")
            options.append(f"--{flag}={shlex.quote(value)}")
    walltime = f"{launch.walltime_seconds:g}s" if launch.walltime_seconds else ""
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH {option}" for option in options),
        "set -euo pipefail",
        *_prologue(launch),
        "# The allocation's end as SLURM sees it: the worker drains before it.",
        "ALLOCATION=()",
        'ENDS=$(scontrol show job "${SLURM_JOB_ID:-}" 2>/dev/null '
        "| sed -n 's/.*EndTime=\\([^ ]*\\).*/\\1/p' | head -n 1 || true)",
        'if [ -n "$ENDS" ] && ENDS_AT=$(date -d "$ENDS" +%s 2>/dev/null); then',
        '  ALLOCATION=("--allocation-ends-at=$ENDS_AT")',
        f"elif [ -n {shlex.quote(walltime)} ]; then",
        f"  ALLOCATION=({shlex.quote('--walltime=' + walltime)})",
        "fi",
        "trap 'cd / && rm -rf -- \"$WORKING_DIR\"' EXIT",
        "trap 'exit 143' INT TERM",
        f'"$PYTHON" worker.pyz {_command(launch)} "${{ALLOCATION[@]}}"',
        "",
    ]
    return "\n".join(lines)


def baremetal_script(launch: Launch, *, kill_grace_seconds: float = 15.0) -> str:
    """The script of one bare-metal worker, for `ssh host 'bash -s' < script`.

    The whole script is one function, so bash has read all of it before it runs any of it:
    what is left on stdin afterwards is the ssh connection itself, and a watcher treats its end
    (EOF: the adapter hung up, or the connection dropped) as the order to stop.
    """
    timeout = ""
    extra: list[str] = []
    if launch.walltime_seconds:
        timeout = (
            f"timeout --foreground --kill-after={launch.drain_seconds + kill_grace_seconds:g}s "
            f"{launch.walltime_seconds:g}s "
        )
        extra.append(f"--walltime={launch.walltime_seconds:g}s")
    wait_rounds = math.ceil(launch.drain_seconds + kill_grace_seconds)
    body = [
        *_prologue(launch),
        "GROUP=",
        "WATCHER=",
        "cleanup() {",
        "  trap - EXIT HUP INT TERM",
        '  if [ -n "$WATCHER" ]; then',
        '    pkill -KILL -P "$WATCHER" 2>/dev/null || true',
        '    kill -KILL "$WATCHER" 2>/dev/null || true',
        "  fi",
        '  if [ -n "$GROUP" ]; then',
        '    kill -TERM -- "-$GROUP" 2>/dev/null || true',
        f"    for _ in $(seq {wait_rounds}); do",
        '      kill -0 -- "-$GROUP" 2>/dev/null || break',
        "      sleep 1",
        "    done",
        '    kill -KILL -- "-$GROUP" 2>/dev/null || true',
        "  fi",
        "  cd /",
        "  # Tasks run in sessions of their own; this worker's are the ones inside its directory.",
        "  for proc in /proc/[0-9]*; do",
        '    case "$(readlink "$proc/cwd" 2>/dev/null)/" in',
        '      "$WORKING_DIR"/*) kill -KILL "${proc#/proc/}" 2>/dev/null || true ;;',
        "    esac",
        "  done",
        '  rm -rf -- "$WORKING_DIR"',
        "}",
        "trap cleanup EXIT",
        "trap 'exit 143' HUP INT TERM",
        "# Its own session and process group: the group id is the pid of setsid's child.",
        f'setsid {timeout}"$PYTHON" worker.pyz {_command(launch, extra)} </dev/null &',
        "GROUP=$!",
        'echo "VAHANA_WORKER_GROUP=$GROUP"',
        "# The rest of stdin is the ssh connection: its end stops the worker.",
        '{ cat <&3 >/dev/null 2>&1; kill -TERM -- "-$GROUP" 2>/dev/null; } &',
        "WATCHER=$!",
        'disown "$WATCHER"',
        'wait "$GROUP" || exit $?',
    ]
    lines = [
        "#!/bin/bash",
        "vahana_worker_main() {",
        "set -euo pipefail",
        "exec 3<&0",
        *body,
        "}",
        "vahana_worker_main; exit $?",
        "",
    ]
    return "\n".join(lines)
