"""The questions the ledger answers, read off the stored events (SPEC section 10).

Custody is the last checkout or checkin of the device at or before the instant; the session
is the last checkout, reauth, forced_logoff or checkin. Both are one indexed lookup on
(device_id, at), so `who` stays fast at millions of events, and a late event that fills a hole
is part of every answer from the moment it is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Connection, select

from handoff.ledger.schema import events, exceptions

CUSTODY: Final = ("checkout", "checkin")
SESSION: Final = ("checkout", "reauth", "forced_logoff", "checkin")


@dataclass(frozen=True)
class Holder:
    device_id: str
    at: float
    staff_id: str | None
    since: float | None
    logged_in: bool
    session_id: str | None


@dataclass(frozen=True)
class Interval:
    """One custody interval: who held the device from when to when, and how it ended."""

    device_id: str
    staff_id: str
    start: float
    end: float | None
    ended_by: str | None
    sessions: int
    """Sessions started in it (the checkout's, and one per reauth)."""
    logoffs: str
    """How its session ends stand: `confirmed`, `unconfirmed`, `pending` or `n/a` (no agent)."""


@dataclass(frozen=True)
class OpenException:
    id: int
    type: str
    device_id: str
    source: str
    opened: float
    detail: str
    acked_by: str | None


def who(conn: Connection, device_id: str, at: float) -> Holder:
    custody = conn.execute(
        select(events.c.type, events.c.staff_id, events.c.at)
        .where(events.c.device_id == device_id, events.c.at <= at, events.c.type.in_(CUSTODY))
        .order_by(events.c.at.desc(), events.c.seq.desc())
        .limit(1)
    ).first()
    if custody is None or custody.type != "checkout":
        return Holder(device_id, at, None, None, False, None)
    session = conn.execute(
        select(events.c.type, events.c.session_id)
        .where(events.c.device_id == device_id, events.c.at <= at, events.c.type.in_(SESSION))
        .order_by(events.c.at.desc(), events.c.seq.desc())
        .limit(1)
    ).first()
    live = session is not None and session.type in ("checkout", "reauth")
    return Holder(device_id, at, custody.staff_id, custody.at, live, session.session_id if session and live else None)


def history(
    conn: Connection,
    *,
    device_id: str | None = None,
    staff_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[Interval]:
    """The custody intervals of a device or a staff member that overlap [since, until]."""
    if device_id is not None:
        devices = [device_id]
    else:
        devices = [
            row[0] for row in conn.execute(select(events.c.device_id).where(events.c.staff_id == staff_id).distinct())
        ]
    found = [
        interval
        for device in sorted(devices)
        for interval in _intervals(conn, device)
        if (staff_id is None or interval.staff_id == staff_id)
        and (until is None or interval.start <= until)
        and (since is None or interval.end is None or interval.end >= since)
    ]
    return sorted(found, key=lambda interval: (interval.start, interval.device_id))


@dataclass
class _Holding:
    staff_id: str
    start: float
    sessions: int = 1
    ends: list[str] = field(default_factory=list)

    def closed(self, device_id: str, end: float | None, how: str | None) -> Interval:
        if not self.ends:
            standing = "n/a"
        else:
            standing = next(
                (answer for answer in ("unconfirmed", "pending", "n/a") if answer in self.ends), "confirmed"
            )
        return Interval(device_id, self.staff_id, self.start, end, how, self.sessions, standing)


def _intervals(conn: Connection, device_id: str) -> Iterator[Interval]:
    rows = conn.execute(
        select(events.c.id, events.c.type, events.c.staff_id, events.c.at, events.c.reason, events.c.for_id)
        .where(events.c.device_id == device_id)
        .order_by(events.c.at, events.c.seq)
    ).all()
    answers: dict[str, str] = {}
    for row in rows:
        if (
            row.type in ("logoff_confirmed", "logoff_unconfirmed")
            and row.for_id
            and answers.get(row.for_id) != "confirmed"
        ):
            answers[row.for_id] = "confirmed" if row.type == "logoff_confirmed" else "unconfirmed"
    holding: _Holding | None = None
    for row in rows:
        if row.type == "checkout":
            if holding is not None:
                yield holding.closed(device_id, row.at, "unknown")
            holding = _Holding(row.staff_id, row.at)
        elif holding is None:
            continue
        elif row.type == "reauth":
            holding.sessions += 1
        elif row.type == "forced_logoff" or (row.type == "checkin" and row.reason == "returned"):
            holding.ends.append(answers.get(row.id, "pending" if answers else "n/a"))
        if holding is not None and row.type == "checkin":
            yield holding.closed(device_id, row.at, row.reason)
            holding = None
    if holding is not None:
        yield holding.closed(device_id, None, None)


def open_exceptions(conn: Connection) -> list[OpenException]:
    rows = conn.execute(
        select(exceptions).where(exceptions.c.closed.is_(None)).order_by(exceptions.c.opened, exceptions.c.id)
    ).all()
    return [
        OpenException(row.id, row.type, row.device_id, row.source, row.opened, row.detail, row.acked_by) for row in rows
    ]
