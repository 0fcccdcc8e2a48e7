"""A device's custody and sessions as a picture: one row of custody bars (who held it), one of
session bars (whether they were logged in), a time axis. Geometry only; the template draws it.

Colour is never the only cue: every bar has a text title, custody bars are labelled with the
holder where they are wide enough, a session whose logoff was not confirmed ends in a mark,
and the same intervals stand in a table under the picture.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from handoff.ledger.queries import Timeline
from handoff.timefmt import rfc3339

WIDTH: Final = 960
LEFT: Final = 8
RIGHT: Final = 8
LABEL_MIN_PX: Final = 48
TICKS: Final = 6
PALETTE: Final = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#6f6f6f")
"""Okabe and Ito's colour-blind-safe palette: holders told apart by colour where they can be."""


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
        return round(left, 1), round(max(right - left, 1.0), 1)

    custody = []
    for held in line.custody:
        x, width = place(held.start, held.end)
        until = rfc3339(held.end) if held.end is not None else "now"
        how = f", ended by {held.ended_by}" if held.ended_by else ""
        label = held.staff_id if width >= LABEL_MIN_PX else ""
        title = f"held by {held.staff_id} from {rfc3339(held.start)} to {until}{how}"
        custody.append(Bar(x, width, colour(held.staff_id), label, title))
    sessions = []
    for session in line.sessions:
        x, width = place(session.start, session.end)
        until = rfc3339(session.end) if session.end is not None else "now"
        how = f", ended by {session.ended_by} (logoff {session.logoff})" if session.ended_by else ""
        title = f"{session.staff_id} logged in from {rfc3339(session.start)} to {until}{how}"
        sessions.append(Bar(x, width, colour(session.staff_id), "", title, session.logoff == "unconfirmed"))
    ticks = [
        Tick(round(LEFT + usable * i / (TICKS - 1), 1), rfc3339(line.since + span * i / (TICKS - 1))[:19] + "Z")
        for i in range(TICKS)
    ]
    summary = (
        f"{len(line.custody)} custody intervals and {len(line.sessions)} sessions of {line.device_id} "
        f"from {rfc3339(line.since)} to {rfc3339(line.until)}"
    )
    return Picture(WIDTH, custody, sessions, ticks, summary)
