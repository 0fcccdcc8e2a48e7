"""Long tables cut into pages, and the addresses of their views.

A view (its filters, its order, its page) is all in its URL, in one canonical order, so a
person can bookmark it, send it to a colleague or come back to it, and the counts above a table
can be links to the rows they count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar
from urllib.parse import urlencode

from starlette.exceptions import HTTPException

T = TypeVar("T")
PAGE_ROWS: Final = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    number: int
    pages: int
    total: int

    @property
    def first(self) -> int:
        """The 1-based position of the page's first row (0 on an empty table)."""
        return (self.number - 1) * PAGE_ROWS + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def page_number(asked: str | None, total: int) -> tuple[int, int]:
    """The asked page (1 if none) of a view of `total` rows, and how many pages it has; 404 for
    a page that is not a number or past the end."""
    text = asked or "1"
    pages = max(1, -(-total // PAGE_ROWS))
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= pages:
        raise HTTPException(404, f"no page {text[:20]!r}: this view has {pages}")
    return int(text), pages


def page_of(rows: Sequence[T], asked: str | None) -> Page[T]:
    """The asked page of rows the page holds in memory."""
    number, pages = page_number(asked, len(rows))
    return Page(list(rows[(number - 1) * PAGE_ROWS : number * PAGE_ROWS]), number, pages, len(rows))


def view_url(path: str, params: Mapping[str, str], **changes: str) -> str:
    """`path` with `params` changed by `changes`, empty values left out, keys in order."""
    merged = {**params, **changes}
    kept = sorted((key, value) for key, value in merged.items() if value)
    return f"{path}?{urlencode(kept)}" if kept else path


def choice(value: str | None, allowed: Sequence[str], name: str) -> str:
    """A filter's or an order's value, one of `allowed` or empty; anything else is a 400."""
    if not value:
        return ""
    if value not in allowed:
        raise HTTPException(400, f"{name}: {value[:40]!r} is not one of {', '.join(allowed)}")
    return value
