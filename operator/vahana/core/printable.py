"""Text from a task file or a client, made safe to echo to a terminal.

A name or value is shown as written except for what a terminal would act on instead of showing:
control characters (ESC sequences that recolour, retitle or move the cursor, BEL, CR, NUL) and
invisible format characters (bidi overrides that reorder what is read); those are shown as
Python escapes. Long text is cut so that one 100 KB name cannot bury the message around it.
"""

from __future__ import annotations

import unicodedata

SHOWN_CHARS = 200
"""Longest piece of echoed text, before the cut is marked with …"""
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` with control and format characters escaped, cut to `limit` characters."""
    cut = len(text) > limit
    text = text[:limit] if cut else text
    if text.isprintable() and text.isascii():
        return text + ("…" if cut else "")
    shown = "".join(
        _escape(char) if unicodedata.category(char) in _HIDDEN else char for char in text
    )
    return shown + ("…" if cut else "")


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
