"""Parses and formats durations: Go-style ("30s", "1h30m", "500ms") or plain seconds ("2.5")."""

from __future__ import annotations

import math
import re

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Returns the duration `text` stands for, in seconds.

    Accepts plain non-negative seconds ("30", "0.5") or a Go-style sequence of number+unit parts
    ("1h30m", "500ms", "1.5s"); units are ns, us, ms, s, m, h and d. Raises ValueError otherwise.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("empty duration")
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"invalid duration {text!r}: must be a finite number >= 0")
        return seconds
    position = 0
    total = 0.0
    for match in _PART.finditer(raw):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(raw) or position == 0:
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 1h30m, 500ms or plain seconds")
    return total


def format_duration(seconds: float) -> str:
    """Formats seconds compactly, Go-style: 90 → "1m30s", 0.25 → "250ms", 0 → "0s"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole_hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if whole_hours:
        parts.append(f"{int(whole_hours)}h")
    if minutes:
        parts.append(f"{int(minutes)}m")
    if secs:
        parts.append(f"{round(secs, 3):g}s")
    return "".join(parts)
