"""The `vahana` command line: run, server, submit, get, logs, cancel."""

import importlib
from typing import Any

# Two facts of the output that the command line's help gives, here so that it need not load
# the output's module (`render`) to say them.
FULL_TABLE_UP_TO = 50
"""Runs of this many tasks or fewer get the full result table; larger ones a summary."""

PIPED_WIDTH = 10_000
"""Columns of the output when it is not a terminal: wider than any row, so none is cut."""

INTERRUPTED = 130
"""Exit status of a command ended by Ctrl-C (a watch, a follow, a run): 128 + SIGINT, as a
shell reports a command the signal killed."""


class Later:
    """A module imported on first use of one of its names: an ordinary import (under the
    import system's lock, so a thread that uses it while another imports it waits for the
    whole module), then the name looked up in it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)
