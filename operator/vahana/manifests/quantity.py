"""Kubernetes quantities and Go-style durations, parsed into the core's units and formatted back.

CPU is in cores (`"500m"` → 0.5), memory in bytes (`"512Mi"` → 536870912), durations in
seconds (`"1h30m"` → 5400.0). The grammar is that of Kubernetes' `resource.Quantity` and of the
duration pattern in the CRDs; errors are `ValueError`s that say what a valid value looks like.
"""

from __future__ import annotations

import decimal
import math
import re

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_QUANTITY_RE = re.compile(
    rf"(?P<sign>[+-]?)(?P<number>{_NUMBER})"
    rf"(?:(?P<binary>[KMGTPE]i)|(?P<exponent>[eE][+-]?{_NUMBER})|(?P<decimal>[numkMGTPE]))?"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

_DURATION_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+")
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

CPU_EXAMPLES = '2, "0.5" or 500m'
MEMORY_EXAMPLES = "512Mi, 1G, 1e9 or a plain number of bytes"
DURATION_EXAMPLES = "90s, 1h30m or 500ms"

# Exact arithmetic: 2**60 and 1e-9 must both survive.
_CONTEXT = decimal.Context(prec=60)


def parse_quantity(value: int | float | str) -> decimal.Decimal:
    """A Kubernetes quantity (`"1.5"`, `"500m"`, `"2Gi"`, `"1e3"`, `4`) as an exact decimal."""
    if isinstance(value, bool):
        raise ValueError(f"expected a quantity, got the boolean {value!r}")
    if isinstance(value, int):
        return decimal.Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite quantity, got {value!r}")
        return decimal.Decimal(repr(value))
    if not isinstance(value, str):
        raise ValueError(f"expected a quantity (number or string), got {type(value).__name__}")
    match = _QUANTITY_RE.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"{value!r} is not a quantity: write a number with an optional suffix "
            "(m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei) or exponent (1e3)"
        )
    number = decimal.Decimal(match["number"], context=_CONTEXT)
    if match["binary"]:
        number = _CONTEXT.multiply(number, decimal.Decimal(_BINARY[match["binary"]]))
    elif match["exponent"]:
        exponent = decimal.Decimal(match["exponent"][1:], context=_CONTEXT)
        if abs(exponent) > 100:
            raise ValueError(f"{value!r}: exponent out of range")
        number = _CONTEXT.multiply(number, _CONTEXT.power(10, exponent))
    elif match["decimal"]:
        number = number.scaleb(_DECIMAL_EXP[match["decimal"]], context=_CONTEXT)
    return -number if match["sign"] == "-" else number


def parse_cpu(value: int | float | str) -> float:
    """CPU cores from a quantity: `2` → 2.0, `"1.5"` → 1.5, `"500m"` → 0.5. Never negative."""
    try:
        cores = parse_quantity(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; CPU is given like {CPU_EXAMPLES}") from None
    if cores < 0:
        raise ValueError(f"{value!r}: CPU must not be negative; give it like {CPU_EXAMPLES}")
    return float(cores)


def parse_memory(value: int | float | str) -> int:
    """Bytes from a quantity: `"512Mi"`, `"1G"`, `"1e3"`, `1024`; fractions round up."""
    if isinstance(value, str) and value.strip()[-1:] in ("n", "u", "m"):
        raise ValueError(
            f"{value!r}: memory in milli-, micro- or nano-bytes makes no sense; "
            f"did you mean {value.strip()[:-1]}Mi? Give memory like {MEMORY_EXAMPLES}"
        )
    try:
        size = parse_quantity(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; memory is given like {MEMORY_EXAMPLES}") from None
    if size < 0:
        raise ValueError(f"{value!r}: memory must not be negative; give it like {MEMORY_EXAMPLES}")
    return int(size.to_integral_value(rounding=decimal.ROUND_CEILING))


def parse_duration(value: str) -> float:
    """Seconds from a duration: `"90s"` → 90.0, `"1h30m"` → 5400.0, `"500ms"` → 0.5."""
    if not isinstance(value, str):
        raise ValueError(
            f"expected a duration string like {DURATION_EXAMPLES}, got {type(value).__name__} "
            f"{value!r}"
        )
    if _DURATION_RE.fullmatch(value) is None:
        raise ValueError(
            f"{value!r} is not a duration: write numbers with units h, m, s or ms, "
            f"like {DURATION_EXAMPLES}"
        )
    total = 0.0
    for number, unit in _DURATION_PART_RE.findall(value):
        total += float(number) * _DURATION_UNITS[unit]
    return total


def format_cpu(cores: float) -> str:
    """A quantity for `cores`: whole cores as `"2"`, otherwise millicores (`"500m"`)."""
    if cores < 0 or not math.isfinite(cores):
        raise ValueError(f"CPU must be a non-negative number, got {cores!r}")
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(size: int) -> str:
    """A quantity for `size` bytes, with the largest binary suffix that divides it exactly."""
    if size < 0:
        raise ValueError(f"memory must not be negative, got {size!r}")
    for suffix, factor in reversed(_BINARY.items()):
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def format_duration(seconds: float) -> str:
    """A duration for `seconds`, like `"1h30m"`, `"90s"` → `"1m30s"`, `"500ms"`; at ms precision."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"a duration must be a non-negative number of seconds, got {seconds!r}")
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if millis and not secs and not parts[0] and not parts[1]:
        parts.append(f"{millis}ms")
    elif secs or millis:
        parts.append(f"{secs}.{millis:03d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts) or "0s"
