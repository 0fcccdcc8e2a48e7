"""CSV cells that a spreadsheet opens as text, for every CSV the ledger writes (CLI and console)."""

from __future__ import annotations

from typing import Any, Final

FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A spreadsheet opens a cell that starts like a formula as one (CSV injection): such text,
    which here could only come from a message on the broker, is quoted as text."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA):
        return "'" + value
    return value
