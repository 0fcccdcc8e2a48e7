"""Custody histories (a device's holders, a staff member's devices) filtered, sorted and paged
on the server, with the fleet's addresses (listing.py): a view's window, filters, order and page
are all in its URL, so a biomed engineer can send a colleague exactly the rows they looked at.

The window's times go into the URL in UTC (RFC 3339), whatever zone they were typed in, so the
same address shows the same rows to a reader in another zone; a window left open ("the last
30 days") stays open in the URL and moves with the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from handoff.ledger.console.listing import choice
from handoff.ledger.queries import Interval

ENDINGS: Final = ("returned", "handoff", "abandoned", "revoked", "unknown", "held")
"""How an interval ended, as the `ended` filter names it; `held` is one not ended yet."""
ORDERS: Final[dict[str, Callable[[Interval, str], tuple[Any, ...]]]] = {
    "from": lambda held, _: (held.start, held.device_id, held.staff_id),
    "to": lambda held, _: (held.end is None, held.end or 0.0, held.start, held.device_id),
    "who": lambda held, words: (words, held.start),
    "ended": lambda held, _: (held.ended_by or "~", held.start),
}
"""A history's orders (`?sort=`), each ending on the start so that pages never shuffle; `who`
is the other party: the holder on a device's page, the device on a staff member's."""


def ending(held: Interval) -> str:
    return "held" if held.end is None else held.ended_by or "unknown"


@dataclass(frozen=True)
class HistoryView:
    """What a history page shows, read from its URL: newest first unless asked otherwise."""

    since: str
    until: str
    ended: str
    text: str
    order: str
    descending: bool

    @classmethod
    def of(cls, params: Mapping[str, str], since: str, until: str) -> HistoryView:
        """`since` and `until` are the window as the URL keeps it: UTC, or empty when open."""
        return cls(
            since,
            until,
            choice(params.get("ended"), ENDINGS, "ended"),
            (params.get("q") or "").strip()[:255],
            choice(params.get("sort"), tuple(ORDERS), "sort") or "from",
            choice(params.get("dir"), ("asc", "desc"), "dir") != "asc",
        )

    @property
    def params(self) -> dict[str, str]:
        return {
            "since": self.since,
            "until": self.until,
            "ended": self.ended,
            "q": self.text,
            "sort": "" if self.order == "from" else self.order,
            "dir": "" if self.descending else "asc",
        }

    def chosen(self, intervals: list[Interval], words: Callable[[Interval], str]) -> list[Interval]:
        """The intervals this view keeps, in its order; `words` is what the text filter and the
        `who` order read of each (ids and names, lower case)."""
        needle = self.text.lower()
        kept = [
            held
            for held in intervals
            if (not self.ended or ending(held) == self.ended) and (not needle or needle in words(held))
        ]
        key = ORDERS[self.order]
        return sorted(kept, key=lambda held: key(held, words(held)), reverse=self.descending)
