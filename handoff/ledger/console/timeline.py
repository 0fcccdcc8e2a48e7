"""A device's custody and sessions as a picture: one row of custody bars (who held it), one of
session bars (whether they were logged in), a time axis. Geometry only; the template draws it.

Colour is never the only cue: every bar has a text title, custody bars are labelled with the
holder where they are wide enough, a session whose logoff was not confirmed ends in a mark,
and the same intervals stand in a table under the picture.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Generic, TypeVar

from handoff.ledger.queries import Interval, Session
from handoff.timefmt import rfc3339

WIDTH: Final = 960
LEFT: Final = 8
RIGHT: Final = 8
USABLE: Final = WIDTH - LEFT - RIGHT
LABEL_MIN_PX: Final = 48
MIN_PX: Final = 2.0
DENSE: Final = "#767676"
TICKS: Final = 6
T = TypeVar("T")
PALETTE: Final = ("#0b5394", "#8f5600", "#00704f", "#a1457a", "#31688e", "#b03c00", "#6b6300", "#4d4d4d")
"""Okabe and Ito's colour-blind-safe hues, darkened until a bar's white label reads at 4.5:1 and
the bar stands out from the picture's background at 3:1 (tests/test_console_contrast.py)."""


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    fill: str
    label: str
    title: str
    flagged: bool = False


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class Picture:
    width: int
    custody: list[Bar]
    sessions: list[Bar]
    ticks: list[Tick]
    summary: str


def colour(staff_id: str) -> str:
    return PALETTE[hashlib.sha256(staff_id.encode()).digest()[0] % len(PALETTE)]


@dataclass(frozen=True)
class Placed(Generic[T]):
    """An interval or session within the window (`start` and `end` cut to it), or `count` of
    them too narrow to draw one by one (`item` then None)."""

    start: float
    end: float
    count: int
    item: T | None


def picture(
    device_id: str, since: float, until: float, custody: list[Placed[Interval]], sessions: list[Placed[Session]]
) -> Picture:
    span = max(until - since, 1e-9)

    def place(start: float, end: float) -> tuple[float, float]:
        return LEFT + (start - since) / span * USABLE, LEFT + (end - since) / span * USABLE

    custody_bars = _bars(
        [(*place(found.start, found.end), found) for found in custody],
        lambda held, width: Bar(
            0,
            0,
            colour(held.staff_id),
            held.staff_id if width >= LABEL_MIN_PX else "",
            f"held by {held.staff_id} from {rfc3339(held.start)} to {_until(held.end)}"
            + (f", ended by {held.ended_by}" if held.ended_by else ""),
        ),
        "custody intervals",
    )
    session_bars = _bars(
        [(*place(found.start, found.end), found) for found in sessions],
        lambda session, width: Bar(
            0,
            0,
            colour(session.staff_id),
            "",
            f"{session.staff_id} logged in from {rfc3339(session.start)} to {_until(session.end)}"
            + (f", ended by {session.ended_by} (logoff {session.logoff})" if session.ended_by else ""),
            session.logoff == "unconfirmed",
        ),
        "sessions",
    )
    ticks = [
        Tick(round(LEFT + USABLE * i / (TICKS - 1), 1), rfc3339(since + span * i / (TICKS - 1))[:19] + "Z")
        for i in range(TICKS)
    ]
    summary = (
        f"{sum(found.count for found in custody)} custody intervals and {sum(found.count for found in sessions)}"
        f" sessions of {device_id} from {rfc3339(since)} to {rfc3339(until)}"
    )
    return Picture(WIDTH, custody_bars, session_bars, ticks, summary)


def _until(end: float | None) -> str:
    return rfc3339(end) if end is not None else "now"


def _bars(placed: list[tuple[float, float, Placed[Any]]], draw: Callable[[Any, float], Bar], what: str) -> list[Bar]:
    """One bar per interval where it is at least MIN_PX wide; runs of narrower ones, too short
    to tell apart at this width, become one grey bar that says how many it holds (narrowing the
    window draws them one by one). The picture stays a few hundred shapes at most, however many
    intervals the window holds, and the table below still lists each."""
    bars: list[Bar] = []
    run: list[tuple[float, float, Placed[Any]]] = []

    def flush() -> None:
        if not run:
            return
        left, right = run[0][0], max(end for _, end, _ in run)
        count = sum(found.count for _, _, found in run)
        if count == 1 and run[0][2].item is not None:
            bars.append(_at(draw(run[0][2].item, right - left), left, right))
        else:
            title = f"{count} {what}, too short to draw one by one: narrow the window to see each"
            bars.append(Bar(round(left, 1), round(max(right - left, 1.0), 1), DENSE, "", title, False))
        run.clear()

    for left, right, found in placed:
        if found.item is not None and found.count == 1 and right - left >= MIN_PX:
            flush()
            bars.append(_at(draw(found.item, right - left), left, right))
        else:
            if run and left - run[-1][1] > 1.0:
                flush()
            run.append((left, right, found))
    flush()
    return bars


def _at(bar: Bar, left: float, right: float) -> Bar:
    return replace(bar, x=round(left, 1), width=round(max(right - left, 1.0), 1))
