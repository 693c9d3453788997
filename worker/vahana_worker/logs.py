"""Structured logging: one line per event, `key=value` pairs, no external library.

Call sites pass fields through `extra={"kv": {...}}` (or the `event()` helper); a filter adds the
worker id to every record. Output looks like:

    ts=2026-01-01T12:00:00.123Z level=info logger=agent msg="task started" worker_id=w1 task_id=t1
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

_RESERVED = {"ts", "level", "logger", "msg"}
_BARE = re.compile(r"(?:[^\W_]|[-_./:@+,%])+")
"""Letters, digits and `-_./:@+,%`: a value written without quotes (a regex: per-character
Python checks made formatting a task's log lines a visible share of the worker's CPU)."""


def quote(value: object) -> str:
    """Renders one value: bare if it is a simple token, else double-quoted with escapes."""
    text = value if isinstance(value, str) else str(value)
    if text and _BARE.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class KeyValueFormatter(logging.Formatter):
    """Formats records as `key=value` lines; fields come from the record's `kv` mapping."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""
        """The timestamp's text to the second, for the last second formatted: a worker logs
        two lines per task, most of them within the same second."""

    def _stamp(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"ts={self._second_text}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            self._stamp(record.created, record.msecs),
            f"level={record.levelname.lower()}",
            f"logger={quote(record.name.removeprefix('vahana_worker.'))}",
            f"msg={quote(record.getMessage())}",
        ]
        fields: dict[str, Any] = {}
        worker_id = getattr(record, "worker_id", None)
        if worker_id:
            fields["worker_id"] = worker_id
        kv = getattr(record, "kv", None)
        if isinstance(kv, Mapping):
            fields.update(kv)
        for key, value in fields.items():
            if value is None:
                continue
            name = f"field_{key}" if key in _RESERVED else key
            parts.append(f"{name}={quote(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += " exc=" + quote(self.formatException(record.exc_info))
        return line


class WorkerIdFilter(logging.Filter):
    """Stamps every record with the worker id."""

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker_id = self.worker_id
        return True


def setup(level: str, worker_id: str) -> None:
    """Sends the package's logs to stderr as key=value lines at `level` (debug, info, ...).

    For the worker's own process: its records carry no caller, thread or process fields (the
    lines never show them; looking them up was a tenth of a `true` task's logging cost)."""
    logging._srcfile = None  # the logging HOWTO's "Optimization": no caller frame lookup
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(WorkerIdFilter(worker_id))
    root = logging.getLogger("vahana_worker")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def event(logger: logging.Logger, msg: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Logs one event with `fields` as key=value pairs."""
    logger.log(level, msg, extra={"kv": fields})
