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
from typing import Any, Final

from handoff.ledger.queries import Timeline
from handoff.timefmt import rfc3339

WIDTH: Final = 960
LEFT: Final = 8
RIGHT: Final = 8
LABEL_MIN_PX: Final = 48
MIN_PX: Final = 2.0
DENSE: Final = "#767676"
TICKS: Final = 6
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


def picture(line: Timeline) -> Picture:
    span = max(line.until - line.since, 1e-9)
    usable = WIDTH - LEFT - RIGHT

    def place(start: float, end: float | None) -> tuple[float, float]:
        left = LEFT + (max(start, line.since) - line.since) / span * usable
        right = LEFT + (min(end if end is not None else line.until, line.until) - line.since) / span * usable
        return left, right

    custody = _bars(
        [(*place(held.start, held.end), held) for held in line.custody],
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
    sessions = _bars(
        [(*place(session.start, session.end), session) for session in line.sessions],
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
        Tick(round(LEFT + usable * i / (TICKS - 1), 1), rfc3339(line.since + span * i / (TICKS - 1))[:19] + "Z")
        for i in range(TICKS)
    ]
    summary = (
        f"{len(line.custody)} custody intervals and {len(line.sessions)} sessions of {line.device_id} "
        f"from {rfc3339(line.since)} to {rfc3339(line.until)}"
    )
    return Picture(WIDTH, custody, sessions, ticks, summary)


def _until(end: float | None) -> str:
    return rfc3339(end) if end is not None else "now"


def _bars(placed: list[tuple[float, float, Any]], draw: Callable[[Any, float], Bar], what: str) -> list[Bar]:
    """One bar per interval where it is at least MIN_PX wide; runs of narrower ones, too short
    to tell apart at this width, become one grey bar that says how many it holds (narrowing the
    window draws them one by one). The picture stays a few hundred shapes at most, however many
    intervals the window holds, and the table below still lists each."""
    bars: list[Bar] = []
    run: list[tuple[float, float, Any]] = []

    def flush() -> None:
        if not run:
            return
        left, right = run[0][0], max(end for _, end, _ in run)
        if len(run) == 1:
            bars.append(_at(draw(run[0][2], right - left), left, right))
        else:
            title = f"{len(run)} {what}, too short to draw one by one: narrow the window to see each"
            bars.append(Bar(round(left, 1), round(max(right - left, 1.0), 1), DENSE, "", title, False))
        run.clear()

    for left, right, item in placed:
        if right - left >= MIN_PX:
            flush()
            bars.append(_at(draw(item, right - left), left, right))
        else:
            if run and left - run[-1][1] > 1.0:
                flush()
            run.append((left, right, item))
    flush()
    return bars


def _at(bar: Bar, left: float, right: float) -> Bar:
    return replace(bar, x=round(left, 1), width=round(max(right - left, 1.0), 1))
