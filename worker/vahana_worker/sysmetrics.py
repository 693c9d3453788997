"""Host figures for heartbeats and capabilities: CPU % (from /proc/stat deltas), memory, load.

Linux reads /proc; elsewhere the figures degrade to what the standard library offers.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

PROC = Path("/proc")


@dataclasses.dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int
    used_bytes: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used_bytes / self.total_bytes if self.total_bytes else 0.0


def _read_cpu_times(proc: Path) -> tuple[int, int] | None:
    """Returns (busy, total) jiffies of the aggregate `cpu` line of /proc/stat."""
    try:
        with open(proc / "stat", encoding="ascii") as stat:
            first = stat.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    # counted in user/nice, so only the first eight fields make up the total.
    fields = values[:8]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields)
    return total - idle, total


class CpuSampler:
    """CPU utilisation of the whole host between successive `percent()` calls."""

    def __init__(self, proc: Path = PROC) -> None:
        self._proc = proc
        self._lock = threading.Lock()
        self._last = _read_cpu_times(proc)

    def percent(self) -> float:
        """Busy percentage (0-100) since the previous call (or since construction)."""
        with self._lock:
            now = _read_cpu_times(self._proc)
            last, self._last = self._last, now
        if now is None or last is None:
            return 0.0
        busy = now[0] - last[0]
        total = now[1] - last[1]
        if total <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * busy / total))


def memory(proc: Path = PROC) -> MemoryInfo:
    """Total and used memory of the host; used = MemTotal - MemAvailable."""
    values: dict[str, int] = {}
    try:
        with open(proc / "meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    factor = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
                    values[key] = int(parts[0]) * factor
    except OSError:
        values = {}
    total = values.get("MemTotal")
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = 0
        return MemoryInfo(total_bytes=total, used_bytes=0)
    available = values.get("MemAvailable", values.get("MemFree", 0))
    return MemoryInfo(total_bytes=total, used_bytes=max(0, total - available))


def load_average() -> float:
    """The one-minute load average (0 where unknown)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def cpu_count() -> float:
    """CPUs this process may use (its affinity mask where known)."""
    try:
        return float(len(os.sched_getaffinity(0)))
    except AttributeError:
        return float(os.cpu_count() or 1)
