"""Command line: parses flags (falling back to the environment), sets up logging, runs the worker.

Exit codes: 0 after a clean shutdown, 2 for bad flags or settings, 1 for a fatal error.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from vahana_worker import __version__, agent, linux, logs, settings

_log = logging.getLogger(__name__)

_EPILOG = f"""\
Every flag can also be set through the environment variable shown with it; a flag wins over
the environment, which wins over the default. Variables of the original worker design keep
their plain names (SERVER_ADDRESS, WORKER_ID, ...); options Vahana added are read from
{settings.ENV_PREFIX}<NAME>. Durations are Go-style (30s, 1h30m, 500ms) or plain seconds.

environment only:
{
    chr(10).join(
        f"  {o.env:<40} {o.help} (default {settings.shown_default(o)})"
        for o in settings.OPTIONS
        if not o.flag
    )
}

exit codes: 0 clean shutdown, 1 fatal error, 2 bad flags or settings.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every flag defaults to None so unset flags fall back to the env."""
    parser = argparse.ArgumentParser(
        prog="vahana-worker",
        description="Vahana worker: registers with a Vahana scheduler and runs the shell tasks "
        "it hands out, each in its own sandbox and process group.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for option in settings.OPTIONS:
        if not option.flag:
            continue
        default = settings.shown_default(option)
        text = f"{option.help} [env {option.env}; default {default}]"
        if option.kind == "bool":
            parser.add_argument(
                option.flag, dest=option.field, action="store_true", default=None, help=text
            )
        elif option.kind == "labels":
            parser.add_argument(
                option.flag,
                dest=option.field,
                action="append",
                default=None,
                metavar=option.metavar,
                help=text,
            )
        else:
            parser.add_argument(
                option.flag,
                dest=option.field,
                default=None,
                metavar=option.metavar or option.field.upper(),
                help=text,
            )
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> settings.Settings:
    """Parses `argv` (default sys.argv[1:]) and the environment; exits with 2 when they are bad."""
    parser = build_parser()
    namespace = parser.parse_args(argv)
    try:
        return settings.load(vars(namespace))
    except settings.SettingsError as exc:
        parser.error("invalid settings:\n  " + "\n  ".join(exc.errors))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `vahana-worker`."""
    config = parse_settings(argv)
    logs.setup(config.log_level, config.worker_id)
    if not linux.protect_secrets():
        _log.warning("cannot hide the worker's environment from its tasks on this platform")
    try:
        worker = agent.Worker(config)
    except Exception:
        _log.exception("worker could not start")
        sys.exit(1)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Not inline: a handler that takes a lock the interrupted main thread holds (an Event's,
        # say) would deadlock; a thread of its own cannot.
        reason = f"received {signal.Signals(signum).name}"
        threading.Thread(target=worker.shutdown, args=(reason,), name="signal").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent = os.environ.get(linux.PARENT_PID_ENV, "")
    if config.exit_with_parent and not linux.exit_with_parent(
        parent=int(parent) if parent.isdigit() else None
    ):
        _log.warning("--exit-with-parent is not supported on this platform")
    code = worker.run()
    # The drain has delivered every result, closed the channel and ended what the tasks left;
    # the interpreter's own teardown (gRPC's, every module's) cost each worker 0.1–0.2 s at
    # the end of every run, so the process leaves once its logs are out.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
