"""The small interface every reader implements, and what readers report.

Readers report presence edges, not taps: a badge arriving, a badge leaving. That is what lets
the core count a badge left on the reader as one tap. The identifier stays in memory: it is
hidden from reprs so no log line or traceback can carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias


@dataclass(frozen=True)
class BadgePresented:
    reader: str
    identifier: bytes = field(repr=False)
    technology: str
    at: float
    """time.monotonic() when the badge was seen, for latency measurements."""
    expired: bool = False
    """A genuine PIV card out of its validity dates: refused (`piv_expired`), yet its holder is
    known, so break-glass may give them the device."""


@dataclass(frozen=True)
class BadgeRemoved:
    reader: str
    identifier: bytes = field(repr=False)
    at: float
    card_pulled: bool = False
    """A contact card left a reader set to `lock_on_card_removal`: the holder's session locks."""


@dataclass(frozen=True)
class BadRead:
    """A card answered but could not be trusted; `reason` is a tap_rejected reason code."""

    reader: str
    reason: str
    problem: str
    at: float


ReaderEvent: TypeAlias = BadgePresented | BadgeRemoved | BadRead
Emit: TypeAlias = Callable[[ReaderEvent], None]


@dataclass(frozen=True)
class ReaderHealth:
    reader: str
    kind: str
    ok: bool
    detail: str


class Reader(Protocol):
    name: str

    def open(self, emit: Emit) -> None:
        """Start reporting; returns at once, the reader works on its own thread."""

    def health(self) -> ReaderHealth: ...

    def close(self) -> None: ...
