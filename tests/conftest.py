"""Shared by every test tier: puts `tests/` on sys.path so tests can `import builders`."""

import pathlib
import sys

_TESTS = str(pathlib.Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
