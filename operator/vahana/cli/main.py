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
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import rich.markup
from rich.console import Console

from vahana import __version__, cli
from vahana.app import settings as settings_module
from vahana.cli import flags
from vahana.core import arrays, models, printable
from vahana.proto import task_service_pb2 as tasks_pb
from vahana.proto import worker_pb2

if TYPE_CHECKING:
    from vahana.cli import client as client_module
    from vahana.cli import logs as task_logs
    from vahana.cli import render, watch
    from vahana.manifests import pools as pool_manifests
    from vahana.manifests import tasks as task_manifests
    from vahana.manifests import yamlload
else:
    # Loaded on first use: `vahana run` starts its local workers first (their start-up is the
    # first task's wait), then reads its file with these (60 ms of imports).
    client_module = cli.Later("vahana.cli.client")
    task_logs = cli.Later("vahana.cli.logs")
    render = cli.Later("vahana.cli.render")
    watch = cli.Later("vahana.cli.watch")
    task_manifests = cli.Later("vahana.manifests.tasks")
    yamlload = cli.Later("vahana.manifests.yamlload")

# A command imports what only it needs where it runs: the client commands do not load the
# scheduler, `run` and `server` load a pool type's adapter, the metrics or the dashboard only
# when asked for them (tests/unit/cli/test_startup_imports.py).

T = TypeVar("T")
MAX_RUN_KEY = 190
"""Longest --idempotency-key: with a namespace (≤ 63) and a name (≤ 253), a task key stays
within TaskService's 512 characters."""

DEFAULT_SERVER = "localhost:50051"
GET_WHAT = "tasks, task NAME (one task or array) or workers"
DEFAULT_LIST_LIMIT = 500
"""Tasks `get tasks` shows without --limit or --all."""
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


class Refused(Exception):
    """The scheduler refused a request or could not be reached: printed, exit code 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if getattr(options, "server", None) is None:  # not given after the command
        options.server = options.global_server or os.environ.get("VAHANA_SERVER", DEFAULT_SERVER)
    console = stdout_console()
    errors = Console(stderr=True, highlight=False)
    try:
        return int(options.handler(options, console))
    except UsageError as error:
        # The message may quote the file: no markup is read from it.
        errors.print(f"[red]error:[/] {rich.markup.escape(str(error))}", soft_wrap=True)
        return 2
    except Refused as error:
        errors.print(f"[red]error:[/] {rich.markup.escape(str(error))}", soft_wrap=True)
        return 1
    except grpc.RpcError as error:
        errors.print(f"[red]error:[/] {_rpc_message(error, options)}", soft_wrap=True)
        return 1
    except client_module.Unreachable:
        errors.print(f"[red]error:[/] {_unreachable(options)}", soft_wrap=True)
        return 1
    except Exception as error:
        if not isinstance(error, _scheduler_failures()):
            raise
        errors.print(f"[red]error:[/] {rich.markup.escape(str(error))}", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        return cli.INTERRUPTED


def stdout_console() -> Console:
    """The commands' output. Piped or redirected, a table's rows are printed whole, a line
    each (as kubectl does), rather than wrapped to 80 columns, so that grep finds them."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = cli.PIPED_WIDTH
    return console


SCHEDULER_FAILURES = (
    ("vahana.store.base", "StoreUnavailable"),
    ("vahana.rpc.server", "PortInUse"),
    ("vahana.web.server", "PortInUse"),
    ("vahana.observability.endpoint", "PortInUse"),
    ("vahana.app.keeper", "WorkersCannotStart"),
)
"""Errors of a scheduler that `run`, `server` or `operator` started (its store cannot be had,
its port, the dashboard's or the metrics' is taken, a run's local workers cannot start): a
message and exit code 1, no traceback."""


def _scheduler_failures() -> tuple[type[BaseException], ...]:
    # Looked up, not imported: a command that did not load a module cannot have raised its errors.
    return tuple(
        getattr(sys.modules[module], name)
        for module, name in SCHEDULER_FAILURES
        if module in sys.modules
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vahana",
        description="Run shell tasks on workers: locally, on Kubernetes, SLURM or bare metal.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vahana {__version__}")
    parser.add_argument(
        "--server",
        dest="global_server",
        metavar="HOST:PORT",
        help="scheduler address for the client commands, before or after the command",
    )
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
    flags.add(run_parser, "run")
    run_parser.add_argument(
        "--all",
        action="store_true",
        help=f"print every task in the result table (default: up to "
        f"{cli.FULL_TABLE_UP_TO} tasks; a larger run gets a summary)",
    )
    run_parser.add_argument(
        "-o",
        "--output",
        choices=["wide"],
        help="wide: the same as --all",
    )
    _add_pool_file_flag(run_parser)
    _add_idempotency_flag(run_parser)
    run_parser.set_defaults(handler=_run)

    server = commands.add_parser(
        "server",
        help="run the scheduler as a service",
        description="Serve WorkerService and TaskService (gRPC, with health and reflection) "
        "and keep local workers running until interrupted.",
    )
    flags.add(server, "server")
    _add_pool_file_flag(server)
    server.set_defaults(handler=_serve)

    operator = commands.add_parser(
        "operator",
        help="run the Kubernetes operator (scheduler + Task/WorkerPool handlers)",
        description="Watch Task and WorkerPool resources, run the scheduler and its gRPC "
        "server, start workers through WorkerPools, mirror status and Worker objects. "
        "Uses $KUBECONFIG, or the in-cluster service account.",
    )
    flags.add(operator, "operator")
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

    get = commands.add_parser(
        "get",
        help="show tasks or workers",
        description=f"Show {GET_WHAT}.",
    )
    # Optional for argparse, so that a missing one gets _get's message naming what to give.
    get.add_argument("what", nargs="?", choices=["tasks", "task", "workers"], help=GET_WHAT)
    get.add_argument("name", nargs="?", help="task id or name (for `get task`)")
    get.add_argument(
        "-o",
        "--output",
        choices=["table", "json", "yaml"],
        default="table",
        help="json / yaml: the records as the API returns them — a list for `get tasks` and "
        "`get workers` (also of one or none), an object for `get task`",
    )
    get.add_argument("--status", help="only tasks with this status, e.g. RUNNING")
    shown = get.add_mutually_exclusive_group()
    shown.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIST_LIMIT,
        help="at most this many tasks, oldest first (default %(default)s)",
    )
    shown.add_argument(
        "--all", action="store_true", help="every task (read from the scheduler page by page)"
    )
    get.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="after the list, print a line for each task change as it happens (Ctrl-C ends)",
    )
    _add_server_flag(get)
    get.set_defaults(handler=_get)

    logs = commands.add_parser(
        "logs", help="print a task's whole output (up to the kept size); -f: follow it"
    )
    logs.add_argument("task", help="task id or name")
    logs.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing what the task writes while it runs, until it ends",
    )
    logs.add_argument(
        "--index", type=int, metavar="I", help="of an array: the output of its instance I"
    )
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
    certs_parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="directory to write the files into (made if missing; a CA in it is reused)",
    )
    certs_parser.add_argument(
        "--hosts",
        default=",".join(CERT_HOSTS),
        help="comma-separated names and IPs of the server certificate (default %(default)s)",
    )
    certs_parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="how many worker certificates, worker-1.pem … worker-N.pem (default %(default)s)",
    )
    certs_parser.add_argument(
        "--days",
        type=int,
        default=365,
        help="validity of the certificates, in days (default %(default)s)",
    )
    certs_parser.set_defaults(handler=_certs)
    return parser


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
    if not paths:
        return found
    from vahana.manifests import pools as pool_manifests

    for path in paths:
        text = _read_text(path)
        try:
            found.extend(pool_manifests.parse_pool_documents(text, source=str(path)))
        except pool_manifests.ManifestError as error:
            raise UsageError(str(error)) from error
    return found


def _add_server_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=None,  # main(): `vahana --server X get …` too, then VAHANA_SERVER, the default
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
    overrides = flags.overrides(options, options.command)
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
    if settings.queues.file:
        from vahana.app import service
        from vahana.manifests import queues as queue_manifests

        try:
            service.read_queue_file(settings.queues.file)
        except queue_manifests.ManifestError as error:
            raise UsageError(str(error)) from error
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    return settings


def _instances(submissions: Sequence[models.Submission]) -> list[models.Submission]:
    """Arrays as their instances (`core.arrays.expand`), after the keys are given."""
    return [one for submission in submissions for one in arrays.expand(submission)]


def _read_tasks(path: Path, *, pipeline: bool = True) -> list[models.Submission]:
    """The Tasks of a file; `pipeline`: it is the whole run (`vahana run`), so dependencies
    name its own Tasks (`vahana submit` may name tasks the server holds)."""
    text = _read_text(path)
    try:
        submissions = task_manifests.parse_task_documents(text, source=str(path), pipeline=pipeline)
    except task_manifests.ManifestError as error:
        raise UsageError(str(error)) from error
    if not submissions:
        raise UsageError(f"{_shown(path)}: no Task found — expect documents with kind: Task")
    return submissions


def _read_text(path: Path) -> str:
    """A task or pool file ('-': stdin) as text: at most yamlload.MAX_BYTES of UTF-8."""
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(yamlload.MAX_BYTES + 1)
        else:
            with path.open("rb") as file:
                data = file.read(yamlload.MAX_BYTES + 1)
    except OSError as error:
        raise UsageError(f"cannot read {_shown(path)}: {error.strerror}") from error
    try:
        return yamlload.decode(data, source=str(path))
    except yamlload.YAMLProblem as error:
        raise UsageError(printable.printable(f"{error.message} — {error.hint}", 1000)) from error


def _shown(path: Path) -> str:
    return printable.printable(str(path))


@contextlib.contextmanager
def _nothing_submitted(options: argparse.Namespace) -> Iterator[None]:
    """Every refusal before or of a submission ends saying that nothing was submitted (a
    submission is all or nothing; a lost answer is not a refusal and is handled apart)."""
    after = f"\nnothing was submitted from {_shown(options.file)}"
    try:
        yield
    except UsageError as error:
        raise UsageError(f"{error}{after}") from error
    except client_module.Unreachable as error:
        raise Refused(_unreachable(options) + after) from error
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            raise Refused(_unreachable(options) + after) from error
        message = printable.printable(_rpc_message(error, options), 2000)
        raise Refused(f"the scheduler refused the tasks: {message}{after}") from error


def _run_key(options: argparse.Namespace) -> str | None:
    """--idempotency-key, checked; None without one (then the run takes a new key)."""
    key: str | None = options.idempotency_key
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_RUN_KEY or not key.isprintable():
        raise UsageError(
            f"--idempotency-key: give 1–{MAX_RUN_KEY} printable characters, e.g. a date and "
            "a name (nightly-2026-12-02), or leave it out for a new submission each run"
        )
    return key


def _run(options: argparse.Namespace, console: Console) -> int:
    submissions: list[models.Submission] = []

    def read_tasks() -> list[models.Submission]:
        with _nothing_submitted(options):
            run_key = key or client_module.new_run_key()
            submissions.extend(
                _instances(client_module.with_keys(_read_tasks(options.file), run_key))
            )
        return submissions

    with _nothing_submitted(options):
        key = _run_key(options)
        pools = _read_pools(options.pool_file)
        if pools:  # pools start remote workers (ssh, sbatch): not for a file that is refused
            read_tasks()
    fixed: dict[str, Any] = {"server.port": 0}
    if "VAHANA_LOCAL_POOL_OUTPUT_DIR" not in os.environ:
        fixed["local_pool.output_dir"] = "outputs"  # ./outputs: beside the task file's user
    if "VAHANA_METRICS_PORT" not in os.environ:
        fixed["metrics.port"] = 0  # no /metrics unless asked for
    if pools:
        fixed["local_pool.workers"] = 0
    if options.ui is None and options.ui_port is not None:
        fixed["ui.enabled"] = True  # a port asks for the dashboard
    with tempfile.TemporaryDirectory(prefix="vahana-run-") as scratch:
        with _nothing_submitted(options):
            settings = _settings(options, **fixed, **{"store.state_dir": scratch})
        from vahana.app import keeper
        from vahana.cli import run  # the scheduler: store, gRPC server, local pool

        # Without pools, the file is read while the local workers start (`run.run_tasks`).
        tasks = submissions if pools else read_tasks
        try:
            results = asyncio.run(run.run_tasks(tasks, settings, console, pools))
        except keeper.WorkersCannotStart as error:
            if settings.store.state_dir != scratch:
                raise
            # The logs it names go with the temporary state dir as the command exits.
            raise keeper.WorkersCannotStart(
                f"{error}\n(the workers' logs are removed with the run's temporary state dir: "
                "give --state-dir DIR to keep them)"
            ) from error
    if options.all or options.output == "wide" or render.rows(results) <= cli.FULL_TABLE_UP_TO:
        render.show(console, render.results_table(results))
    else:
        render.show(console, render.run_summary(results))
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
    from vahana.app import service, stores
    from vahana.store import base as store_base

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

    settings = _settings(options, **_dashboard_on({"log_level": "info"}))
    asyncio.run(operator_module.run(settings))
    return 0


def _submit(options: argparse.Namespace, console: Console) -> int:
    with _nothing_submitted(options):
        run_key = _run_key(options) or client_module.new_run_key()
        submissions = _instances(
            client_module.with_keys(_read_tasks(options.file, pipeline=False), run_key)
        )
        client = _client(options)
    errors = Console(stderr=True, highlight=False)

    def retrying(attempt: int, error: grpc.RpcError, pause: float) -> None:
        code = error.code().name.lower()
        errors.print(
            f"no answer from the scheduler at {options.server} ({code}); submitting again "
            f"in {pause:g} s with the same idempotency key {run_key}, so nothing is "
            "submitted twice",
            markup=False,
            soft_wrap=True,
        )

    try:
        with _nothing_submitted(options):
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
    array_ids: dict[str, list[str]] = {}
    for submission, task_id in zip(submissions, ids, strict=True):
        if submission.spec.array:
            array_ids.setdefault(submission.spec.array, []).append(task_id)
            continue
        name = printable.printable(submission.spec.name)
        console.print(f"task/{name} submitted as {printable.printable(task_id)}", markup=False)
    for array, instances in array_ids.items():
        console.print(
            f"task/{printable.printable(array)} submitted as an array of {len(instances):,} "
            f"instances ({instances[0]} … {instances[-1]})",
            markup=False,
        )
    if not options.wait:
        return 0
    results = client_module.wait_for(client, ids, console)
    render.show(console, render.results_table(results))
    return 0 if all(r.status == worker_pb2.COMPLETED for r in results) else 1


def _get(options: argparse.Namespace, console: Console) -> int:
    if options.what is None:
        raise UsageError(f"get: say what to show: {GET_WHAT}, e.g. `vahana get tasks`")
    client = _client(options)
    if getattr(options, "watch", False):
        return _watch(options, client)
    if options.what == "workers":
        workers = client.list_workers()
        if options.output != "table":
            client_module.print_records(console, list(workers), options.output)
        else:
            render.show(console, render.workers_table(workers))
        return 0
    if options.what == "task":
        if not options.name:
            raise UsageError("get task: give a task id or name")
        task = client.get(options.name)
        if options.output != "table":
            client_module.print_record(console, task, options.output)
        elif task.HasField("array_status"):
            render.show(console, render.array_table(task))
        else:
            render.show(console, render.tasks_table([task]))
        return 0
    known = set(worker_pb2.TaskStatus.keys()) - {"TASK_STATUS_UNSPECIFIED"}
    if options.status and options.status.upper() not in known:
        raise UsageError(
            f"--status: {options.status!r} — use one of PENDING, ASSIGNED, RUNNING, "
            "COMPLETED, FAILED, CANCELLED, TIMED_OUT, UPSTREAM_FAILED"
        )
    if options.limit < 1 and not options.all:
        raise UsageError("--limit: give a number ≥ 1, or --all for every task")
    listing = client.list_tasks(options.status or "", 0 if options.all else options.limit)
    if listing.more:
        # On stderr: -o json / yaml output stays one document.
        Console(stderr=True, highlight=False).print(
            f"showing the oldest {len(listing.tasks)} task(s); more are there: "
            "--limit N for more, --all for every task, --status to select",
            markup=False,
            soft_wrap=True,
        )
    if options.output != "table":
        client_module.print_records(console, list(listing.tasks), options.output)
    else:
        render.show(console, render.tasks_table(listing.tasks))
    return 0


def _watch(options: argparse.Namespace, client: client_module.Client) -> int:
    if options.what != "tasks":
        raise UsageError("--watch: only `get tasks --watch` is supported")
    if options.output == "yaml":
        raise UsageError("--watch: use -o table or -o json (one object per line)")
    # The stream first, so that no change between the list and the watch is missed.
    changes = client.tasks.WatchTasks(tasks_pb.WatchTasksRequest())
    # Ctrl-C cancels the stream, which ends the loop below: an interrupt raised inside gRPC's
    # wait could leave its threads behind and the process hanging at exit.
    interrupted: list[int] = []

    def on_ctrl_c(signum: int, _frame: object) -> None:
        interrupted.append(signum)
        changes.cancel()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        changes.initial_metadata()  # the scheduler listens from here on
        current = client.list_tasks(options.status or "", 0 if options.all else options.limit)
        watch.follow(current.tasks, changes, output=options.output)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            raise
    finally:
        signal.signal(signal.SIGINT, previous)
        changes.cancel()
    return cli.INTERRUPTED if interrupted else 0


def _tell_where_kept(task: tasks_pb.TaskInfo, console: Console) -> None:
    """The pool's storage copy of the output, which outlives the scheduler's."""
    if task.output_log:
        where = printable.printable(task.output_log)
        console.print(f"(whole output kept at {where})", style="dim", markup=False)


def _logs(options: argparse.Namespace, console: Console) -> int:
    name = (
        options.task if options.index is None else arrays.instance_name(options.task, options.index)
    )
    client = _client(options)
    task = client.get(name)
    if task.HasField("array_status"):
        raise UsageError(
            f"{options.task} is an array of {task.array_status.total:,} instances: give "
            f"--index I for the output of one ({_indices(task)})"
        )
    if task_logs.copy_output(client.tasks, task.id, follow=options.follow):
        if options.follow:
            task = client.get(task.id)
        if task.message and task.status in client_module.FINAL:
            console.print(f"[dim]{render.status_name(task)}: {task.message}[/]")
        _tell_where_kept(task, console)
        return 0
    if task.output_tail:
        sys.stdout.write(
            task.output_tail if task.output_tail.endswith("\n") else task.output_tail + "\n"
        )
    elif task.status in client_module.FINAL:
        name = printable.printable(task.name or task.id)
        console.print(f"(task {name} left no output)", markup=False)
    else:
        console.print(
            f"(task {printable.printable(task.name or task.id)} is {render.status_name(task)}; "
            "its output appears when it ends)",
            markup=False,
        )
    if task.message:
        message = printable.printable(task.message, 20_000)
        console.print(f"{render.status_name(task)}: {message}", style="dim", markup=False)
    _tell_where_kept(task, console)
    return 0


def _indices(task: Any) -> str:
    """`failed indices: 3, 7` (or cancelled, or both: render.ended_indices)."""
    listed = arrays.listed(task.array_status.failed_indices) or "none"
    return f"{render.ended_indices(task.array_status).lower()}: {listed}"


def _cancel(options: argparse.Namespace, console: Console) -> int:
    client = _client(options)
    reply = client.cancel(options.task, options.reason)
    name = printable.printable(options.task)
    if not reply.cancelled:
        console.print(
            f"task {name} had already ended: {worker_pb2.TaskStatus.Name(reply.status)}",
            markup=False,
        )
        return 1
    # Read again: the reply's status is the task's after the cancel but an array's before it.
    now = client.get(options.task)
    if now.status == worker_pb2.CANCELLED:
        console.print(f"task {name}: cancelled", markup=False)
    elif now.status in client_module.FINAL:  # it ended first, or an array with failed instances
        console.print(
            f"task {name}: cancel requested; it ended {render.status_name(now)}", markup=False
        )
    else:
        console.print(
            f"task {name}: cancel requested; it is {render.status_name(now)} until its worker "
            "stops it",
            markup=False,
        )
    return 0


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
    code = error.code()
    details = error.details()
    if code == grpc.StatusCode.UNAVAILABLE:
        return _unreachable(options)
    return f"{code.name.lower()}: {details}"


def _unreachable(options: argparse.Namespace) -> str:
    address = getattr(options, "server", "?")
    if not _listening(address):
        return (
            f"cannot reach the scheduler at {address} — start one with `vahana server`, or "
            "pass --server HOST:PORT"
        )
    if getattr(options, "tls_ca_file", None):
        return (
            f"something listens at {address} but the TLS connection failed — check that "
            "--tls-ca-file signed its certificate and that the name in --server is in it; "
            "give --tls-cert-file and --tls-key-file if it asks for a client certificate"
        )
    return (
        f"something listens at {address} but does not answer plain gRPC — if the scheduler "
        "serves TLS, give --tls-ca-file (and --tls-cert-file, --tls-key-file if it asks for a "
        "client certificate)"
    )


def _listening(address: str) -> bool:
    """Whether a TCP connection to HOST:PORT is accepted (a scheduler that will not speak
    with this client, rather than none)."""
    import socket  # only to explain a failure

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
