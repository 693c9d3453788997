"""The `vahana` command line: run, server, submit, get, logs, cancel."""

import importlib.util
import sys
from types import ModuleType

# Two facts of the output that the command line's help gives, here so that it need not load
# the output's module (`render`) to say them.
FULL_TABLE_UP_TO = 50
"""Runs of this many tasks or fewer get the full result table; larger ones a summary."""

PIPED_WIDTH = 10_000
"""Columns of the output when it is not a terminal: wider than any row, so none is cut."""

INTERRUPTED = 130
"""Exit status of a command ended by Ctrl-C (a watch, a follow, a run): 128 + SIGINT, as a
shell reports a command the signal killed."""


def lazy(name: str) -> ModuleType:
    """The module `name`, executed on first use of one of its attributes (the standard
    library's `importlib.util.LazyLoader`); at once if it is loaded already."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
