"""Parses byte sizes: plain bytes ("1048576") or with a binary/decimal suffix ("512Mi", "2G")."""

from __future__ import annotations

import re

_SUFFIXES: dict[str, int] = {
    "": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKMGT]i?)?[bB]?")


def parse_size(text: str) -> int:
    """Returns the number of bytes `text` stands for; raises ValueError if it is not a size."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid size {text!r}: use bytes or a suffix such as Ki, Mi, Gi, G")
    return int(float(match.group(1)) * _SUFFIXES[match.group(2) or ""])
