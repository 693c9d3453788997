"""Shared helpers of the benchmark: results, machine facts, CPU clocks, percentiles, cleanup."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any


@dataclasses.dataclass
class Result:
    """One figure: a value with its unit, and what it is compared with."""

    name: str
    value: float
    unit: str
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    comparison: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "value": _round(self.value), "unit": self.unit}
        data["detail"] = {k: _round(v) for k, v in self.detail.items()}
        if self.comparison is not None:
            data["comparison"] = {k: _round(v) for k, v in self.comparison.items()}
        return data


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4 if abs(value) < 10 else 1)
    return value


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def cpu_self() -> float:
    """CPU seconds (user + system) of this process, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_children() -> float:
    """CPU seconds of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation), so p99 is an observed sample."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def stray_processes(pattern: str) -> list[str]:
    """Lines of `pgrep -af PATTERN` belonging to us (our own pgrep excluded)."""
    try:
        out = subprocess.run(
            ["pgrep", "-af", pattern], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return []
    mine = {str(os.getpid())}
    return [line for line in out.splitlines() if line.split(" ", 1)[0] not in mine]


def log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)
