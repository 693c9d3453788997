"""`vahana`: run shell tasks on local workers, or serve and talk to a scheduler.

Exit codes: 0 success; 1 a task did not complete, or the scheduler refused or could not be
reached; 2 bad usage or an invalid task file (nothing is submitted from an invalid file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import rich.markup
from rich.console import Console

from vahana import __version__
from vahana.app import service, stores
from vahana.app import settings as settings_module
from vahana.cli import client as client_module
from vahana.cli import render, run
from vahana.core import models
from vahana.manifests import pools as pool_manifests
from vahana.manifests import tasks as task_manifests
from vahana.proto import worker_pb2
from vahana.rpc import server as rpc_server
from vahana.store import base as store_base

T = TypeVar("T")
MAX_RUN_KEY = 190
"""Longest --idempotency-key: with a namespace (≤ 63) and a name (≤ 253), a task key stays
within TaskService's 512 characters."""

DEFAULT_SERVER = "localhost:50051"
CERT_HOSTS = ("localhost", "127.0.0.1", "::1")
"""The server certificate's names and addresses that `vahana certs` writes by default."""
EXAMPLES = """\
examples:
  vahana run -f deploy/examples/hello.yaml          run the tasks on local workers, then exit
  vahana server --state-dir /var/lib/vahana         serve on :50051 with local workers
  vahana submit -f tasks.yaml --wait                submit to a running scheduler
  vahana get tasks            vahana get workers    vahana logs hello
  vahana cancel hello
  vahana certs --out certs --workers 2              a CA and certificates for mutual TLS
"""


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    console = Console(stderr=False, highlight=False)
    errors = Console(stderr=True, highlight=False)
    try:
        return int(options.handler(options, console))
    except UsageError as error:
        errors.print(f"[red]error:[/] {error}", markup=True, soft_wrap=True)
        return 2
    except grpc.RpcError as error:
        errors.print(f"[red]error:[/] {_rpc_message(error, options)}", soft_wrap=True)
        return 1
    except client_module.Unreachable:
        errors.print(f"[red]error:[/] {_unreachable(options)}", soft_wrap=True)
        return 1
    except (store_base.StoreUnavailable, rpc_server.PortInUse) as error:
        errors.print(f"[red]error:[/] {rich.markup.escape(str(error))}", soft_wrap=True)
        return 1
    except Exception as error:
        # The dashboard's module (aiohttp) is loaded only when a dashboard was asked for.
        web_server = sys.modules.get("vahana.web.server")
        if web_server is None or not isinstance(error, web_server.PortInUse):
            raise
        errors.print(f"[red]error:[/] {rich.markup.escape(str(error))}", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vahana",
        description="Run shell tasks on workers: locally, on Kubernetes, SLURM or bare metal.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vahana {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser(
        "run",
        help="run the tasks of a file on local workers and print the results",
        description="Start a scheduler with local worker processes, run the Tasks in FILE "
        "(the same YAML as the Task resources), show progress, print a result table. "
        "Exits 1 if any task did not complete.",
    )
    run_parser.add_argument(
        "-f", "--file", required=True, type=Path, help="Task YAML file ('-' for stdin)"
    )
    run_parser.add_argument(
        "--all",
        action="store_true",
        help=f"print every task in the result table (default: up to "
        f"{render.FULL_TABLE_UP_TO} tasks; a larger run gets a summary)",
    )
    run_parser.add_argument(
        "-o",
        "--output",
        choices=["wide"],
        help="wide: the same as --all",
    )
    run_parser.add_argument(
        "--output-dir",
        default="outputs",
        help="where local workers put the tasks' outputFiles (default ./outputs) "
        "[VAHANA_LOCAL_POOL_OUTPUT_DIR]",
    )
    _add_scheduler_flags(run_parser, default_state="a new temporary directory")
    _add_pool_file_flag(run_parser)
    _add_idempotency_flag(run_parser)
    run_parser.set_defaults(handler=_run)

    server = commands.add_parser(
        "server",
        help="run the scheduler as a service",
        description="Serve WorkerService and TaskService (gRPC, with health and reflection) "
        "and keep local workers running until interrupted.",
    )
    server.add_argument(
        "--host",
        help="listen address (default 127.0.0.1; 0.0.0.0 for remote workers) [VAHANA_SERVER_HOST]",
    )
    server.add_argument(
        "--store-url",
        help="sqlite:///file.db (default: in the state dir) or postgresql://user@host:port/db "
        "[VAHANA_STORE_URL]",
    )
    server.add_argument(
        "--output-dir",
        help="where local workers put the tasks' outputFiles (default: <state dir>/outputs) "
        "[VAHANA_LOCAL_POOL_OUTPUT_DIR]",
    )
    _add_scheduler_flags(server, default_state=".vahana")
    _add_standby_flag(server)
    _add_pool_file_flag(server)
    server.set_defaults(handler=_serve)

    operator = commands.add_parser(
        "operator",
        help="run the Kubernetes operator (scheduler + Task/WorkerPool handlers)",
        description="Watch Task and WorkerPool resources, run the scheduler and its gRPC "
        "server, start workers through WorkerPools, mirror status and Worker objects. "
        "Uses $KUBECONFIG, or the in-cluster service account.",
    )
    operator.add_argument(
        "--host",
        help="gRPC listen address (default 127.0.0.1; 0.0.0.0 in a cluster) [VAHANA_SERVER_HOST]",
    )
    operator.add_argument(
        "--store-url", help="sqlite:///file.db or postgresql://… [VAHANA_STORE_URL]"
    )
    operator.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        help="watch only this namespace (repeatable; default: all) "
        "[VAHANA_OPERATOR_NAMESPACES, comma-separated]",
    )
    operator.add_argument(
        "--worker-server-address",
        help="how pool workers reach this scheduler, e.g. vahana.vahana-system.svc:50051 "
        "[VAHANA_OPERATOR_WORKER_SERVER_ADDRESS]",
    )
    _add_scheduler_flags(operator, default_state=".vahana")
    _add_standby_flag(operator)
    operator.set_defaults(handler=_operate)

    submit = commands.add_parser(
        "submit",
        help="submit the tasks of a file to a running scheduler",
        description="Submit the Tasks in FILE and print their ids. Each run of the command is "
        "one submission with its own idempotency key: if the scheduler's answer is lost "
        "(it restarted, the connection broke), the same tasks are sent again with the same "
        "keys, and the scheduler returns their ids instead of creating them twice.",
    )
    submit.add_argument(
        "-f", "--file", required=True, type=Path, help="Task YAML file ('-' for stdin)"
    )
    submit.add_argument(
        "--wait",
        action="store_true",
        help="wait until every task has finished; exit 1 if any failed",
    )
    _add_idempotency_flag(submit)
    submit.add_argument(
        "--retry-for",
        type=float,
        metavar="SECONDS",
        default=os.environ.get("VAHANA_CLIENT_RETRY_FOR", "60"),
        help="after a lost answer, keep trying (same keys) for this long, then give up and "
        "print the key to try again with (default 60) [VAHANA_CLIENT_RETRY_FOR]",
    )
    _add_server_flag(submit)
    submit.set_defaults(handler=_submit)

    get = commands.add_parser("get", help="show tasks or workers")
    get.add_argument("what", choices=["tasks", "task", "workers"], help="what to show")
    get.add_argument("name", nargs="?", help="task id or name (for `get task`)")
    get.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    get.add_argument("--status", help="only tasks with this status, e.g. RUNNING")
    get.add_argument("--limit", type=int, default=0, help="at most this many tasks")
    _add_server_flag(get)
    get.set_defaults(handler=_get)

    logs = commands.add_parser("logs", help="print the output a task left (its kept tail)")
    logs.add_argument("task", help="task id or name")
    _add_server_flag(logs)
    logs.set_defaults(handler=_logs)

    cancel = commands.add_parser(
        "cancel", help="cancel a task; a running one is stopped on its worker"
    )
    cancel.add_argument("task", help="task id or name")
    cancel.add_argument("--reason", default="", help="recorded on the task")
    _add_server_flag(cancel)
    cancel.set_defaults(handler=_cancel)

    certs_parser = commands.add_parser(
        "certs",
        help="make a CA, a server certificate and client certificates for a test setup",
        description="Write ca.pem, server.pem, client.pem, worker-N.pem (each with its "
        "-key.pem), bootstrap-token and client-token into DIR. An existing CA in DIR is "
        "reused, so running it again rotates the server and client certificates.",
    )
    certs_parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    certs_parser.add_argument(
        "--hosts",
        default=",".join(CERT_HOSTS),
        help="comma-separated names and IPs of the server certificate (default %(default)s)",
    )
    certs_parser.add_argument("--workers", type=int, default=1, help="worker certificates")
    certs_parser.add_argument("--days", type=int, default=365, help="validity in days")
    certs_parser.set_defaults(handler=_certs)
    return parser


def _add_scheduler_flags(parser: argparse.ArgumentParser, *, default_state: str) -> None:
    parser.add_argument(
        "--port", type=int, help="gRPC port (run: a free port; server: 50051) [VAHANA_SERVER_PORT]"
    )
    parser.add_argument(
        "--state-dir",
        help=f"store, logs and sandboxes (default: {default_state}) [VAHANA_STORE_STATE_DIR]",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="local worker processes (default: one per CPU; 0: none, for remote workers only) "
        "[VAHANA_LOCAL_POOL_WORKERS]",
    )
    parser.add_argument(
        "--tasks-per-worker",
        type=int,
        help="tasks each local worker runs at once (default 1) "
        "[VAHANA_LOCAL_POOL_TASKS_PER_WORKER]",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        metavar="SECONDS",
        help="worker heartbeat interval (default 30) [VAHANA_SCHEDULER_HEARTBEAT_INTERVAL_SECONDS]",
    )
    parser.add_argument(
        "--missed-heartbeats",
        type=int,
        help="missed heartbeats before a worker is unhealthy (default 3) "
        "[VAHANA_SCHEDULER_MISSED_HEARTBEATS]",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="port of the Prometheus /metrics endpoint (run: 0, off; server and operator: 9090) "
        "[VAHANA_METRICS_PORT]",
    )
    parser.add_argument(
        "--ui",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve the web dashboard (server and operator: on; run: off, --ui or --ui-port "
        "turns it on) [VAHANA_UI_ENABLED]",
    )
    parser.add_argument(
        "--ui-port",
        type=int,
        help="HTTP port of the dashboard (default 8080; 0: a free port) [VAHANA_UI_PORT]",
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="[VAHANA_LOG_LEVEL]"
    )
    security = parser.add_argument_group("security (docs/security.md)")
    for name, text in (
        ("tls-cert-file", "server certificate chain (PEM)"),
        ("tls-key-file", "its private key (PEM)"),
        ("tls-client-ca-file", "CA of client certificates (PEM); all three: mutual TLS"),
        ("bootstrap-token-file", "secret workers register with; set: worker tokens required"),
        ("client-token-file", "token TaskService clients must present"),
    ):
        section = "TLS" if name.startswith("tls-") else "AUTH"
        field = name.removeprefix("tls-").replace("-", "_").upper()
        security.add_argument(
            f"--{name}", metavar="FILE", help=f"{text} [VAHANA_{section}_{field}]"
        )
    security.add_argument(
        "--bind-worker-certificates",
        action="store_true",
        default=None,
        help="a worker's client certificate must name its worker id or pool (CN) "
        "[VAHANA_TLS_BIND_WORKER_CERTIFICATES]",
    )
    security.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="serve plaintext on a non-loopback address [VAHANA_TLS_INSECURE]",
    )


def _add_standby_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--standby",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="PostgreSQL store held by another scheduler: wait as a standby, serving nothing, "
        "and take over when that scheduler's session ends (default); --no-standby: exit 1. "
        "A SQLite state dir never waits: a second scheduler on it exits 1 [VAHANA_STORE_STANDBY]",
    )


def _add_idempotency_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="name this submission: each task's key is KEY/<namespace>/<name> (a Task's "
        "metadata.uid, when set, is its key instead), and a scheduler that has those keys "
        "already returns the existing tasks and creates nothing. Default: a new random key, "
        "so running the command again submits the tasks again",
    )


def _add_pool_file_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pool-file",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="WorkerPool YAML (local, slurm or baremetal) run by this scheduler (repeatable); "
        "with it, `run` starts no default local workers unless --workers is given",
    )


def _read_pools(paths: Sequence[Path]) -> list[pool_manifests.PoolManifest]:
    found: list[pool_manifests.PoolManifest] = []
    for path in paths:
        try:
            text = path.read_text()
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror}") from error
        try:
            found.extend(pool_manifests.parse_pool_documents(text, source=str(path)))
        except pool_manifests.ManifestError as error:
            raise UsageError(str(error)) from error
    return found


def _add_server_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=os.environ.get("VAHANA_SERVER", DEFAULT_SERVER),
        help=f"scheduler address (default {DEFAULT_SERVER}) [VAHANA_SERVER]",
    )
    for name, text in (
        ("tls-ca-file", "CA of the scheduler's certificate; set: connect with TLS"),
        ("tls-cert-file", "client certificate (PEM) for mutual TLS"),
        ("tls-key-file", "its private key (PEM)"),
        ("token-file", "file holding the client token"),
    ):
        env = "VAHANA_CLIENT_" + name.replace("-", "_").upper()
        parser.add_argument(
            f"--{name}", metavar="FILE", default=os.environ.get(env), help=f"{text} [{env}]"
        )


def _client(options: argparse.Namespace) -> client_module.Client:
    try:
        return client_module.Client(
            options.server,
            ca_file=options.tls_ca_file,
            cert_file=options.tls_cert_file,
            key_file=options.tls_key_file,
            token_file=options.token_file,
        )
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from error


def _settings(options: argparse.Namespace, **fixed: Any) -> settings_module.Settings:
    overrides = {
        "server.host": getattr(options, "host", None),
        "server.port": options.port,
        "store.url": getattr(options, "store_url", None),
        "store.state_dir": options.state_dir,
        "store.standby": getattr(options, "standby", None),
        "local_pool.workers": options.workers,
        "local_pool.tasks_per_worker": options.tasks_per_worker,
        "local_pool.output_dir": getattr(options, "output_dir", None),
        "scheduler.heartbeat_interval_seconds": options.heartbeat_interval,
        "scheduler.missed_heartbeats": options.missed_heartbeats,
        "metrics.port": options.metrics_port,
        "ui.enabled": options.ui,
        "ui.port": options.ui_port,
        "tls.cert_file": options.tls_cert_file,
        "tls.key_file": options.tls_key_file,
        "tls.client_ca_file": options.tls_client_ca_file,
        "tls.insecure": options.insecure,
        "tls.bind_worker_certificates": options.bind_worker_certificates,
        "auth.bootstrap_token_file": options.bootstrap_token_file,
        "auth.client_token_file": options.client_token_file,
        "log_level": options.log_level,
    }
    for key, value in fixed.items():
        if overrides.get(key) is None:
            overrides[key] = value
    try:
        settings = settings_module.load(overrides)
    except ValueError as error:
        raise UsageError(str(error)) from error
    problems = settings.validate()
    if settings.tls.enabled and settings.local_workers > 0 and not problems:
        if options.workers is None and "VAHANA_LOCAL_POOL_WORKERS" not in os.environ:
            local_pool = dataclasses.replace(settings.local_pool, workers=0)
            settings = dataclasses.replace(settings, local_pool=local_pool)
        else:
            problems.append(
                "local_pool.workers: local workers cannot present a client certificate — "
                "with mutual TLS use --workers 0 and start workers with --tls-* flags"
            )
    if problems:
        raise UsageError("invalid settings:\n  " + "\n  ".join(problems))
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    return settings


def _read_tasks(path: Path) -> list[models.Submission]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error
    try:
        submissions = task_manifests.parse_task_documents(text, source=str(path))
    except task_manifests.ManifestError as error:
        raise UsageError(f"{error}\nnothing was submitted from {path}") from error
    if not submissions:
        raise UsageError(f"{path}: no Task found — expect documents with kind: Task")
    return submissions


def _run_key(options: argparse.Namespace) -> str:
    """--idempotency-key, checked; or a new key for this run."""
    key = options.idempotency_key
    if key is None:
        return client_module.new_run_key()
    if not key.strip() or len(key) > MAX_RUN_KEY or not key.isprintable():
        raise UsageError(
            f"--idempotency-key: give 1–{MAX_RUN_KEY} printable characters, e.g. a date and "
            "a name (nightly-2026-12-02), or leave it out for a new submission each run"
        )
    return key


def _run(options: argparse.Namespace, console: Console) -> int:
    submissions = client_module.with_keys(_read_tasks(options.file), _run_key(options))
    pools = _read_pools(options.pool_file)
    fixed: dict[str, Any] = {"server.port": 0}
    if "VAHANA_METRICS_PORT" not in os.environ:
        fixed["metrics.port"] = 0  # no /metrics unless asked for
    if pools:
        fixed["local_pool.workers"] = 0
    if options.ui is None and options.ui_port is not None:
        fixed["ui.enabled"] = True  # a port asks for the dashboard
    with tempfile.TemporaryDirectory(prefix="vahana-run-") as scratch:
        settings = _settings(options, **fixed, **{"store.state_dir": scratch})
        results = asyncio.run(run.run_tasks(submissions, settings, console, pools))
    if options.all or options.output == "wide" or len(results) <= render.FULL_TABLE_UP_TO:
        console.print(render.results_table(results))
    else:
        console.print(render.run_summary(results))
    if any(s.spec.output_files for s in submissions):
        console.print(f"outputs collected in {Path(settings.local_pool.output_dir).resolve()}")
    failed = [r for r in results if r.status != worker_pb2.COMPLETED]
    if failed:
        console.print(f"[red]{len(failed)} of {len(results)} task(s) did not complete[/]")
        return 1
    console.print(f"[green]all {len(results)} task(s) completed[/]")
    return 0


def _dashboard_on(fixed: dict[str, Any]) -> dict[str, Any]:
    """server and operator serve the dashboard unless told not to (flag or environment)."""
    if "VAHANA_UI_ENABLED" not in os.environ:
        fixed["ui.enabled"] = True
    return fixed


def _serve(options: argparse.Namespace, console: Console) -> int:
    settings = _settings(options, **_dashboard_on({"log_level": "info"}))
    pools = _read_pools(options.pool_file)

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        store = await _first(
            stores.open_when_free(
                settings.store_url, state_dir=settings.state_dir, standby=settings.store.standby
            ),
            stop,
        )
        if store is None:  # stopped while standing by
            return 0
        process = service.SchedulerProcess(settings, pools=pools, store=store)
        try:
            await process.start()
        except BaseException:
            await process.stop()
            raise
        console.print(
            f"vahana scheduler on {settings.server.host}:{process.server.port} "
            f"(store {store_base.redact_url(settings.store_url)}, "
            f"{settings.local_workers if process.pool else 0} local workers"
            + (f", pools {', '.join(p.name for p in pools)}" if pools else "")
            + ")"
            + (f"; dashboard {process.dashboard.url}" if process.dashboard else "")
        )
        lost = asyncio.ensure_future(process.store_lost.wait())
        await _first(lost, stop)
        await process.stop()
        if process.lost_store_error is not None:
            raise process.lost_store_error
        return 0

    return asyncio.run(serve())


async def _first(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The result of `work`, or None (and `work` cancelled) if `stop` is set first."""
    doing = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([doing, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if doing.done():
        return doing.result()
    doing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await doing
    return None


def _operate(options: argparse.Namespace, console: Console) -> int:
    from vahana.app import operator as operator_module  # kopf loads only for this command

    fixed: dict[str, Any] = {"log_level": "info"}
    if options.namespaces:
        fixed["operator.namespaces"] = ",".join(options.namespaces)
    if options.worker_server_address:
        fixed["operator.worker_server_address"] = options.worker_server_address
    settings = _settings(options, **_dashboard_on(fixed))
    asyncio.run(operator_module.run(settings))
    return 0


def _submit(options: argparse.Namespace, console: Console) -> int:
    run_key = _run_key(options)
    submissions = client_module.with_keys(_read_tasks(options.file), run_key)
    client = _client(options)
    errors = Console(stderr=True, highlight=False)

    def retrying(attempt: int, error: grpc.RpcError, pause: float) -> None:
        code = error.code().name.lower()  # type: ignore[attr-defined]
        errors.print(
            f"no answer from the scheduler at {options.server} ({code}); submitting again "
            f"in {pause:g} s with the same idempotency key {run_key}, so nothing is "
            "submitted twice",
            markup=False,
            soft_wrap=True,
        )

    try:
        ids = client.submit(
            submissions,
            retry=client_module.Retry(for_seconds=max(0.0, options.retry_for)),
            notice=retrying,
        )
    except client_module.SubmissionUnanswered as unanswered:
        errors.print(
            f"error: {unanswered}. It may have accepted them: run the command again with "
            f"--idempotency-key {shlex.quote(run_key)} to get their ids without submitting "
            "them twice.",
            markup=False,
            soft_wrap=True,
        )
        return 1
    for submission, task_id in zip(submissions, ids, strict=True):
        console.print(f"task/{submission.spec.name} submitted as {task_id}")
    if not options.wait:
        return 0
    results = client_module.wait_for(client, ids, console)
    console.print(render.results_table(results))
    return 0 if all(r.status == worker_pb2.COMPLETED for r in results) else 1


def _get(options: argparse.Namespace, console: Console) -> int:
    client = _client(options)
    if options.what == "workers":
        workers = client.list_workers()
        if options.output != "table":
            client_module.print_records(console, list(workers), options.output)
        else:
            console.print(render.workers_table(workers))
        return 0
    if options.what == "task":
        if not options.name:
            raise UsageError("get task: give a task id or name")
        tasks = [client.get(options.name)]
    else:
        known = set(worker_pb2.TaskStatus.keys()) - {"TASK_STATUS_UNSPECIFIED"}
        if options.status and options.status.upper() not in known:
            raise UsageError(
                f"--status: {options.status!r} — use one of PENDING, ASSIGNED, RUNNING, "
                "COMPLETED, FAILED, CANCELLED, TIMED_OUT"
            )
        tasks = client.list(options.status or "", options.limit)
    if options.output != "table":
        client_module.print_records(console, list(tasks), options.output)
    else:
        console.print(render.tasks_table(tasks))
    return 0


def _logs(options: argparse.Namespace, console: Console) -> int:
    task = _client(options).get(options.task)
    if task.output_tail:
        sys.stdout.write(
            task.output_tail if task.output_tail.endswith("\n") else task.output_tail + "\n"
        )
    elif task.status in client_module.FINAL:
        console.print(f"(task {task.name or task.id} left no output)")
    else:
        console.print(
            f"(task {task.name or task.id} is {render.status_name(task)}; "
            "its output appears when it ends)"
        )
    if task.message:
        console.print(f"[dim]{render.status_name(task)}: {task.message}[/]")
    return 0


def _cancel(options: argparse.Namespace, console: Console) -> int:
    reply = _client(options).cancel(options.task, options.reason)
    status = worker_pb2.TaskStatus.Name(reply.status)
    if reply.cancelled:
        console.print(f"task {options.task}: cancel requested (was {status})")
        return 0
    console.print(f"task {options.task} had already ended: {status}")
    return 1


def _certs(options: argparse.Namespace, console: Console) -> int:
    hosts = [host.strip() for host in options.hosts.split(",") if host.strip()]
    if not hosts:
        raise UsageError("--hosts: give at least one name or IP for the server certificate")
    if options.workers < 0 or options.days < 1:
        raise UsageError("--workers must be ≥ 0 and --days ≥ 1")
    from vahana.cli import certs  # cryptography loads only for this command

    try:
        written = certs.make_setup(
            options.out, hosts=hosts, workers=options.workers, days=options.days
        )
    except (OSError, ValueError) as error:
        raise UsageError(f"certs: {error}") from error
    for path in written:
        console.print(str(path))
    return 0


def _rpc_message(error: grpc.RpcError, options: argparse.Namespace) -> str:
    code = error.code()  # type: ignore[attr-defined]
    details = error.details()  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNAVAILABLE:
        return _unreachable(options)
    return f"{code.name.lower()}: {details}"


def _unreachable(options: argparse.Namespace) -> str:
    return (
        f"cannot reach the scheduler at {getattr(options, 'server', '?')} — start one with "
        "`vahana server`, or pass --server HOST:PORT"
    )


if __name__ == "__main__":
    sys.exit(main())
