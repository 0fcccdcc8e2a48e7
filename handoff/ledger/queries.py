"""The questions the ledger answers, read off the stored events (docs/ledger.md).

Custody is the last checkout or checkin of the device at or before the instant; the session
is the last checkout, reauth, forced_logoff or checkin. Within one appliance (one source) "last"
follows its seq, not its clock: an event stamped ahead by a clock that was later stepped back
does not outrank the events the appliance made after it. Both are one indexed lookup on
(device_id, at), so `who` stays fast at millions of events, and a late event that fills a hole
is part of every answer from the moment it is stored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple

from sqlalchemy import ColumnElement, Connection, Select, and_, func, or_, select

from handoff.ledger.schema import devices, events, exceptions

CUSTODY: Final = ("checkout", "checkin")
SESSION: Final = ("checkout", "reauth", "forced_logoff", "checkin")
HELD: Final = ("in_use", "locked")
RECEIPTS: Final = ("logoff_confirmed", "logoff_unconfirmed")
UNANSWERED: Final = "unanswered"
"""A session end no receipt has answered yet, stored so (custody.py) until read: `pending` on
a device with an agent, `n/a` on one without."""


@dataclass(frozen=True)
class Holder:
    device_id: str
    at: float
    staff_id: str | None
    since: float | None
    logged_in: bool
    session_id: str | None
    clock_skew: bool = False
    """The answer rests on an event whose time was off (an open or past `clock_skew`)."""


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
class Session:
    """One session on a device: from a checkout or reauth to the logoff or checkin that ended it."""

    device_id: str
    staff_id: str
    session_id: str | None
    start: float
    end: float | None
    ended_by: str | None
    logoff: str
    """How its end stands: `confirmed`, `unconfirmed`, `pending`, or `n/a` (no agent, or still open)."""


@dataclass(frozen=True)
class Flag:
    """One exception, open or closed, and whether someone has acknowledged it."""

    id: int
    type: str
    device_id: str
    source: str
    key: str
    opened: float
    closed: float | None
    detail: str
    acked_by: str | None
    acked_at: float | None


@dataclass(frozen=True)
class DeviceNow:
    """A device as the fleet page shows it: its appliance's last state and whether it is heard."""

    device_id: str
    site: str
    state: str | None
    staff_id: str | None
    since: float | None
    online: bool
    last_heard: float
    overdue: bool


def overdue(state: str | None, since: float | None, now: float, overdue_after_s: float) -> bool:
    """Held (in use or locked) for longer than the lending period: the one rule for the
    `overdue` exception and the fleet page."""
    return state in HELD and since is not None and now - since > overdue_after_s


def offline(status: str | None, last_heard: float, now: float, offline_after_s: float) -> bool:
    """Its last will said so, or nothing at all has been heard from it for `offline_after_s`."""
    return status == "offline" or now - last_heard > offline_after_s


def who(conn: Connection, device_id: str, at: float) -> Holder:
    custody, skewed = _last(conn, device_id, at, CUSTODY)
    if custody is None or custody.type != "checkout":
        return Holder(device_id, at, None, None, False, None, skewed)
    session, session_skewed = _last(conn, device_id, at, SESSION)
    live = session is not None and session.type in ("checkout", "reauth")
    skewed = skewed or session_skewed
    session_id = session.session_id if session and live else None
    return Holder(device_id, at, custody.staff_id, custody.at, live, session_id, skewed)


def _last(conn: Connection, device_id: str, at: float, kinds: tuple[str, ...]) -> tuple[Any, bool]:
    """The device's last event of these kinds at or before `at`: the latest by time picks the
    appliance (a replaced one starts its seq again), then its highest seq at or before `at`;
    and whether either of the two had its time flagged as off."""
    columns = (events.c.type, events.c.staff_id, events.c.session_id, events.c.at, events.c.clock_skew_s)
    before = (events.c.device_id == device_id, events.c.at <= at, events.c.type.in_(kinds))
    latest = conn.execute(
        select(events.c.source, *columns).where(*before).order_by(events.c.at.desc(), events.c.seq.desc()).limit(1)
    ).first()
    if latest is None:
        return None, False
    by_seq = conn.execute(
        select(*columns).where(*before, events.c.source == latest.source).order_by(events.c.seq.desc()).limit(1)
    ).one()
    return by_seq, latest.clock_skew_s is not None or by_seq.clock_skew_s is not None


def history(
    conn: Connection,
    *,
    device_id: str | None = None,
    staff_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> list[Interval]:
    """The custody intervals of a device or a staff member that overlap [since, until].

    A staff member's history with `since` is read from their own events (`_held_by`): it costs
    what they did in the window, not the ledger's age nor the other people's use of the same
    devices. Their devices are then those with one of their events since `since` (their checkin
    included) or held by them now; an interval of theirs begun before `since` and ended in the
    window only by someone else's checkout (their own checkin lost) is not found that way."""
    if device_id is not None:
        devices = {device_id}
    else:
        theirs = select(events.c.device_id).where(events.c.staff_id == staff_id)
        if since is not None:
            theirs = theirs.where(events.c.at >= since)
        devices = set(conn.execute(theirs.distinct()).scalars())
        if since is not None and staff_id is not None:
            devices.update(holding(conn, staff_id))
    walked = (
        _intervals(conn, devices, since)
        if staff_id is None or since is None
        else _held_by(conn, staff_id, devices, since)
    )
    found = [
        interval
        for interval in walked
        if (staff_id is None or interval.staff_id == staff_id)
        and (until is None or interval.start <= until)
        and (since is None or interval.end is None or interval.end >= since)
    ]
    return sorted(found, key=lambda interval: (interval.start, interval.device_id))


def fleet(
    conn: Connection, now: float, overdue_after_s: float, offline_after_s: float, *, site: str | None = None
) -> list[DeviceNow]:
    """Every device now, by site (the console pages through them in SQL: console/fleet.py)."""
    query = select(devices).order_by(devices.c.site, devices.c.device_id)
    if site:
        query = query.where(devices.c.site == site)
    return described(conn, query, now, overdue_after_s, offline_after_s)


def device(
    conn: Connection, device_id: str, now: float, overdue_after_s: float, offline_after_s: float
) -> DeviceNow | None:
    found = described(
        conn, select(devices).where(devices.c.device_id == device_id), now, overdue_after_s, offline_after_s
    )
    return found[0] if found else None


def described(
    conn: Connection, query: Select[Any], now: float, overdue_after_s: float, offline_after_s: float
) -> list[DeviceNow]:
    """The devices rows `query` selects, with whether each is online and overdue at `now`."""
    return [
        DeviceNow(
            row.device_id,
            row.site,
            row.state,
            row.staff_id,
            row.since,
            not offline(row.status, row.last_heard, now, offline_after_s),
            row.last_heard,
            overdue(row.state, row.since, now, overdue_after_s),
        )
        for row in conn.execute(query)
    ]


def sites(conn: Connection) -> list[str]:
    return list(conn.execute(select(devices.c.site).distinct().order_by(devices.c.site)).scalars())


def holding(conn: Connection, staff_id: str) -> list[str]:
    """The devices `staff_id` holds now, as their appliances last said."""
    query = select(devices.c.device_id).where(devices.c.staff_id == staff_id, devices.c.state.in_(HELD))
    return list(conn.execute(query.order_by(devices.c.device_id)).scalars())


def flags(conn: Connection, *, device_id: str | None = None, closed_limit: int = 200) -> list[Flag]:
    """Open exceptions oldest first, then the `closed_limit` most recently closed ones."""
    query = select(exceptions)
    if device_id is not None:
        query = query.where(exceptions.c.device_id == device_id)
    still_open = conn.execute(
        query.where(exceptions.c.closed.is_(None)).order_by(exceptions.c.opened, exceptions.c.id)
    ).all()
    done = conn.execute(
        query.where(exceptions.c.closed.is_not(None)).order_by(exceptions.c.closed.desc()).limit(closed_limit)
    ).all()
    return [
        Flag(
            row.id,
            row.type,
            row.device_id,
            row.source,
            row.key,
            row.opened,
            row.closed,
            row.detail,
            row.acked_by,
            row.acked_at,
        )
        for row in (*still_open, *done)
    ]


def open_exceptions(conn: Connection) -> list[Flag]:
    return [flag for flag in flags(conn, closed_limit=0) if flag.closed is None]


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
                (answer for answer in ("unconfirmed", "pending", "n/a", UNANSWERED) if answer in self.ends), "confirmed"
            )
        return Interval(device_id, self.staff_id, self.start, end, how, self.sessions, standing)


@dataclass
class _Live:
    staff_id: str
    session_id: str | None
    start: float


class Walk:
    """Custody intervals and sessions, from a device's events in time order.

    `answers` are the receipts' outcomes by the ended event's id; an end without one is
    `unanswered` if given, else `pending` where the walk saw any receipt at all and `n/a`
    (no agent) where it saw none."""

    def __init__(self, device_id: str, answers: dict[str, str], unanswered: str | None = None) -> None:
        self._device_id, self._answers = device_id, answers
        self._unanswered = unanswered or ("pending" if answers else "n/a")
        self.intervals: list[Interval] = []
        self.sessions: list[Session] = []
        self._holding: _Holding | None = None
        self._live: _Live | None = None

    def take(self, row: Row) -> None:
        if row.type == "checkout":
            if self._holding is not None:
                self._close(row.at, "unknown")
            self._holding = _Holding(row.staff_id, row.at)
            self._start_session(row)
            return
        if self._holding is None:
            return
        if row.type == "reauth":
            self._holding.sessions += 1
            self._start_session(row)
        elif row.type == "forced_logoff" or (row.type == "checkin" and row.reason == "returned"):
            answer = self._answers.get(row.id, self._unanswered)
            self._holding.ends.append(answer)
            self._end_session(row.at, row.reason, answer)
        if row.type == "checkin":
            self._end_session(row.at, row.reason, "n/a")
            self._close(row.at, row.reason)

    def finish(self) -> list[Interval]:
        if self._live is not None:
            self._end_session(None, None, "n/a")
        if self._holding is not None:
            self.intervals.append(self._holding.closed(self._device_id, None, None))
            self._holding = None
        return self.intervals

    def _close(self, at: float, how: str | None) -> None:
        assert self._holding is not None
        self._end_session(at, "unknown", "n/a")
        self.intervals.append(self._holding.closed(self._device_id, at, how))
        self._holding = None

    def _start_session(self, row: Row) -> None:
        self._end_session(row.at, "unknown", "n/a")
        self._live = _Live(row.staff_id, row.session_id, row.at)

    def _end_session(self, at: float | None, how: str | None, logoff: str) -> None:
        if self._live is None:
            return
        live = self._live
        self.sessions.append(Session(self._device_id, live.staff_id, live.session_id, live.start, at, how, logoff))
        self._live = None


ROW_COLUMNS: Final = (events.c.id, events.c.type, events.c.staff_id, events.c.session_id, events.c.at, events.c.reason)


class Row(NamedTuple):
    id: str
    type: str
    staff_id: str
    session_id: str | None
    at: float
    reason: str | None


def _intervals(conn: Connection, device_ids: set[str], since: float | None) -> Iterator[Interval]:
    """The devices' intervals, each walked from its last checkout at or before `since` (from its
    first event without `since`): the same intervals from there on as a walk from the start,
    sessions and logoffs included, the one in progress at `since` and one ending right at it."""
    if not device_ids:
        return
    window: ColumnElement[bool] = events.c.device_id.in_(sorted(device_ids))
    if since is not None:
        starts = _walk_starts(conn, window, device_ids, since)
        window = or_(*(and_(events.c.device_id == device, events.c.at >= start) for device, start in starts.items()))
    rows: dict[str, list[Row]] = defaultdict(list)
    walked = select(events.c.device_id, *ROW_COLUMNS).where(window, events.c.type.in_(SESSION))
    for device, *found in conn.execute(walked.order_by(events.c.device_id, events.c.at, events.c.seq)):
        rows[device].append(Row(*found))
    answers = _logoff_answers(conn, window)
    for device in sorted(device_ids):
        walk = Walk(device, answers[device])
        for row in rows[device]:
            walk.take(row)
        yield from walk.finish()


def _walk_starts(conn: Connection, chosen: ColumnElement[bool], device_ids: set[str], since: float) -> dict[str, float]:
    """Where each device's walk starts: its last checkout (among `chosen` events) at or before
    `since`, so the interval in progress at `since` is whole; `since` where there is none."""
    last_checkouts = (
        select(events.c.device_id, func.max(events.c.at))
        .where(chosen, events.c.type == "checkout", events.c.at <= since)
        .group_by(events.c.device_id)
    )
    starts = {device: since for device in device_ids}
    starts.update({device: float(at) for device, at in conn.execute(last_checkouts)})
    return starts


def _logoff_answers(conn: Connection, window: ColumnElement[bool]) -> dict[str, dict[str, str]]:
    """Per device, what became of each forced logoff in `window`: confirmed once any receipt
    confirmed it, else unconfirmed."""
    answers: dict[str, dict[str, str]] = defaultdict(dict)
    outcomes = select(events.c.device_id, events.c.type, events.c.for_id).where(window, events.c.type.in_(RECEIPTS))
    for device, kind, for_id in conn.execute(outcomes.order_by(events.c.device_id, events.c.at, events.c.seq)):
        if for_id and answers[device].get(for_id) != "confirmed":
            answers[device][for_id] = "confirmed" if kind == "logoff_confirmed" else "unconfirmed"
    return answers


def _held_by(conn: Connection, staff_id: str, device_ids: set[str], since: float) -> Iterator[Interval]:
    """`staff_id`'s intervals on these devices, walked from their own events only (the index on
    staff_id and time), each device from their last checkout at or before `since`. Someone
    else's event ends their interval only when their own checkin was lost: for an interval left
    open or ended `unknown`, the device's next checkout after theirs is looked up (one indexed
    lookup each, and there are few), and ends it there, as the walk of every event would."""
    if not device_ids:
        return
    theirs = and_(events.c.staff_id == staff_id, events.c.device_id.in_(sorted(device_ids)))
    starts = _walk_starts(conn, theirs, device_ids, since)
    window = and_(theirs, events.c.at >= min(starts.values()))
    rows: dict[str, list[Row]] = defaultdict(list)
    walked = select(events.c.device_id, *ROW_COLUMNS).where(window, events.c.type.in_(SESSION))
    for device, *found in conn.execute(walked.order_by(events.c.device_id, events.c.at, events.c.seq)):
        if found[4] >= starts[device]:
            rows[device].append(Row(*found))
    answers = _logoff_answers(conn, window)
    for device in sorted(device_ids):
        walk = Walk(device, answers[device])
        for row in rows[device]:
            walk.take(row)
        for held in walk.finish():
            if held.end is not None and held.ended_by != "unknown":
                yield held
                continue
            next_checkout = select(func.min(events.c.at)).where(
                events.c.device_id == device, events.c.type == "checkout", events.c.at > held.start
            )
            taken = conn.execute(next_checkout).scalar()
            cut = taken is not None and (held.end is None or taken < held.end)
            yield replace(held, end=float(taken), ended_by="unknown") if taken is not None and cut else held
