"""Text from the broker shown on a terminal as text: control characters escaped.

A staff id or a detail holding `ESC]0;` retitles the terminal, `ESC[2J` clears it, a `\\r`
prints another name over the real one. Text output shows every control and format character
(C0, C1, DEL, bidirectional overrides) as a visible escape; JSON output is left as it is (its
encoder escapes control characters already, and programs read it).
"""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    return "".join(_escaped(ch) if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)


def _escaped(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
