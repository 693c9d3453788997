"""The `vahana` command's entry point: before it imports the command line (a third of a second),
it starts the local workers' zygote for a `vahana run` that will want local workers, so that the
zygote's own imports happen meanwhile, on the other core."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence


def main() -> None:
    if wants_local_workers(sys.argv[1:]):
        from vahana.pools import forking

        forking.start_early()
    from vahana.cli import main as cli

    code = cli.main()
    # The command has finished and closed what it opened; the interpreter's teardown (gRPC's,
    # every module's) would add a tenth of a second to every command, so the process leaves
    # once its output is out.
    logging.shutdown()
    with contextlib.suppress(OSError):  # a reader that has gone (`| head`) misses nothing
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def wants_local_workers(argv: Sequence[str]) -> bool:
    """Whether these arguments look like a `vahana run` on local workers. A wrong guess costs
    only time: an unused zygote ends with this process, a missing one is started later."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command != "run":
        return False
    for i, arg in enumerate(argv):
        if arg in ("-h", "--help") or arg.startswith("--pool-file"):
            return False
        if arg == "--workers=0" or (arg == "--workers" and argv[i + 1 : i + 2] == ["0"]):
            return False
    return True
