"""Reopen delays for a reader that fails: quick at first, never hammering a dead USB port."""

from __future__ import annotations

from typing import Final

FIRST_S: Final = 0.5
CAP_S: Final = 10.0


def reopen_delay(failures: int) -> float:
    return float(min(CAP_S, FIRST_S * 2 ** max(0, failures - 1)))
