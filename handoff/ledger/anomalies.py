"""Anomalies in the trusted events, decided without the database: what opens, what closes.

Four kinds (docs/ledger.md): `concurrent_use` (one staff id with a live session on two devices),
`impossible_travel` (one staff id tapping at two sites faster than anyone travels between them),
`repeated_rejections` (a run of rejected taps at one device), `off_hours` (a checkout outside
the shifts configured for the holder's role). The ledger's ingest (anomaly_watch.py) hands in a
batch's new trusted events and the little it read about them from the database (`State`); what
comes back is all it writes. Kept pure so that each rule is tested on its own, on plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Final
from zoneinfo import ZoneInfo

from handoff.ledger.config import AnomalySettings

TAPS: Final = ("checkout", "reauth", "break_glass")
"""Events that put a badge on a reader at a known time and place, with the staff id it names."""
SESSION_STARTS: Final = ("checkout", "reauth")
SESSION_CHANGES: Final = ("checkout", "reauth", "forced_logoff", "checkin")
ACCEPTED: Final = ("checkout", "reauth")
"""An accepted tap at a device ends a run of rejected ones there."""
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Seen:
    """One trusted event, as much of it as the rules read."""

    id: str
    type: str
    site: str
    device_id: str
    staff_id: str | None
    session_id: str | None
    at: float


@dataclass(frozen=True)
class Live:
    """A session live now (its device's row says `in_use`), and since when the device is held."""

    staff_id: str
    device_id: str
    site: str
    session_id: str | None
    since: float


@dataclass(frozen=True)
class Target:
    """The session an automated `force_logoff` would end: sent only while it is still the live one."""

    device_id: str
    site: str
    session_id: str | None


@dataclass(frozen=True)
class Anomaly:
    kind: str
    device_id: str
    key: str
    """What makes it one exception: while open, the same key does not open another."""
    detail: str
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True)
class Hours:
    """One shift: the weekdays it starts on (0 is Monday) and its start and end in minutes of the day."""

    days: frozenset[int]
    start: int
    end: int

    def covers(self, moment: datetime) -> bool:
        minute = moment.hour * 60 + moment.minute
        today, yesterday = moment.weekday(), (moment.weekday() - 1) % 7
        if self.start < self.end:
            return today in self.days and self.start <= minute < self.end
        if self.start == self.end:
            return today in self.days
        return (today in self.days and minute >= self.start) or (yesterday in self.days and minute < self.end)


@dataclass(frozen=True)
class Rules:
    """`[ledger.anomalies]` as the rules use it."""

    concurrent_use: bool = False
    rejections: int = 0
    within_s: float = 60.0
    travel: Mapping[frozenset[str], float] = field(default_factory=dict)
    shifts: Mapping[str, tuple[Hours, ...]] = field(default_factory=dict)
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    respond: frozenset[str] = frozenset()

    @classmethod
    def of(cls, settings: AnomalySettings) -> Rules:
        shifts: dict[str, tuple[Hours, ...]] = {}
        for shift in settings.shifts:
            hours = Hours(frozenset(DAYS.index(day) for day in shift.days), _minutes(shift.start), _minutes(shift.end))
            shifts[shift.role] = (*shifts.get(shift.role, ()), hours)
        return cls(
            concurrent_use=settings.concurrent_use,
            rejections=settings.repeated_rejections,
            within_s=settings.rejections_within_s,
            travel={frozenset(travel.sites): travel.min_s for travel in settings.travel},
            shifts=shifts,
            zone=ZoneInfo(settings.time_zone),
            respond=frozenset(settings.respond),
        )

    @property
    def active(self) -> bool:
        return self.concurrent_use or self.rejections > 0 or bool(self.travel) or bool(self.shifts)

    @property
    def longest_trip_s(self) -> float:
        return max(self.travel.values(), default=0.0)


@dataclass(frozen=True)
class State:
    """What the rules need from the database, read for one batch (anomaly_watch.py)."""

    live: Sequence[Live] = ()
    """The sessions live before the batch of the staff ids whose sessions it changes."""
    taps: Sequence[Seen] = ()
    """The taps of the batch's tapping staff ids within the batch's span, and each one's nearest
    before and after it within the longest configured trip."""
    rejections: Sequence[Seen] = ()
    """The rejected taps at the batch's rejecting devices within `within_s` of the batch's own."""
    roles: Mapping[str, str] = field(default_factory=dict)
    """The role of each staff id that checked out in the batch, from the directory."""


@dataclass(frozen=True)
class Found:
    opened: list[Anomaly]
    closed: list[tuple[str, str]]
    """(kind, key) of the conditions that no longer hold."""


def session_staff(new: Iterable[Seen]) -> set[str]:
    return {event.staff_id for event in new if event.type in SESSION_CHANGES and event.staff_id}


def tapping_staff(new: Iterable[Seen]) -> set[str]:
    return {event.staff_id for event in new if event.type in TAPS and event.staff_id}


def rejecting_devices(new: Iterable[Seen]) -> set[str]:
    return {event.device_id for event in new if event.type == "tap_rejected"}


def checkout_staff(new: Iterable[Seen]) -> set[str]:
    return {event.staff_id for event in new if event.type == "checkout" and event.staff_id}


def detect(rules: Rules, new: Sequence[Seen], state: State) -> Found:
    opened: list[Anomaly] = []
    closed: list[tuple[str, str]] = []
    if rules.concurrent_use:
        found = concurrent_use(new, state.live)
        opened += found.opened
        closed += found.closed
    if rules.travel:
        opened += impossible_travel(rules.travel, new, state.taps)
    if rules.rejections:
        found = repeated_rejections(rules.rejections, rules.within_s, new, state.rejections)
        opened += found.opened
        closed += found.closed
    if rules.shifts:
        opened += off_hours(rules.shifts, rules.zone, new, state.roles)
    return Found(opened, closed)


def concurrent_use(new: Sequence[Seen], live: Sequence[Live]) -> Found:
    """Opens when a session starts while its staff id holds a live session on another device,
    naming the older ones (the newest is most likely the person at hand); closes once one
    session is left. The batch's session events are replayed in time order over the sessions
    live before it, so a second session that began and ended within one batch (a backlog after
    an outage) is found all the same."""
    now = {session.device_id: session for session in live}
    by_staff: dict[str, dict[str, Live]] = {}
    for session in live:
        by_staff.setdefault(session.staff_id, {})[session.device_id] = session
    opened: dict[str, Anomaly] = {}
    for event in sorted(new, key=lambda event: event.at):
        if event.type not in SESSION_CHANGES:
            continue
        held = now.pop(event.device_id, None)
        if held is not None:
            by_staff[held.staff_id].pop(event.device_id, None)
        if event.type in SESSION_STARTS and event.staff_id:
            kept = event.type == "reauth" and held is not None and held.staff_id == event.staff_id
            since = held.since if kept and held is not None else event.at
            session = Live(event.staff_id, event.device_id, event.site, event.session_id, since)
            now[event.device_id] = session
            mine = by_staff.setdefault(event.staff_id, {})
            mine[event.device_id] = session
            if len(mine) > 1 and event.staff_id not in opened:
                opened[event.staff_id] = _concurrent(event, mine)
    closed = [
        ("concurrent_use", staff_id) for staff_id in sorted(session_staff(new)) if len(by_staff.get(staff_id, {})) < 2
    ]
    return Found(list(opened.values()), closed)


def _concurrent(event: Seen, sessions: dict[str, Live]) -> Anomaly:
    older = sorted(
        (session for device_id, session in sessions.items() if device_id != event.device_id),
        key=lambda session: (session.since, session.device_id),
    )
    where = ", ".join(session.device_id for session in older)
    detail = f"{event.staff_id} began a session on {event.device_id} while live, from before, on {where}"
    targets = tuple(Target(session.device_id, session.site, session.session_id) for session in older)
    return Anomaly("concurrent_use", older[0].device_id, str(event.staff_id), detail, targets)


def impossible_travel(
    travel: Mapping[frozenset[str], float], new: Sequence[Seen], taps: Sequence[Seen]
) -> list[Anomaly]:
    """Two taps of one staff id in a row (by time) at two sites, closer in time than the trip
    between them takes; one of the two is new. Only taps in a row: a badge seen at a site in
    between was somewhere the trip allows. The older tap's device holds the session to end."""
    by_staff: dict[str, dict[str, Seen]] = {}
    for tap in [*taps, *new]:
        if tap.type in TAPS and tap.staff_id:
            by_staff.setdefault(tap.staff_id, {})[tap.id] = tap
    fresh = {tap.id for tap in new}
    found = []
    for staff_id, mine in sorted(by_staff.items()):
        for older, newer in pairwise(sorted(mine.values(), key=lambda seen: (seen.at, seen.id))):
            trip = travel.get(frozenset((older.site, newer.site)))
            if not {older.id, newer.id} & fresh or trip is None or older.site == newer.site:
                continue
            if newer.at - older.at >= trip:
                continue
            key = f"{older.id}>{newer.id}"
            detail = (
                f"{staff_id} tapped at {older.site} ({older.device_id}) and {newer.at - older.at:.0f} s later "
                f"at {newer.site} ({newer.device_id}); the trip takes at least {trip:.0f} s"
            )
            target = Target(older.device_id, older.site, older.session_id)
            found.append(Anomaly("impossible_travel", older.device_id, key, detail, (target,)))
    return found


def repeated_rejections(count: int, within_s: float, new: Sequence[Seen], rejections: Sequence[Seen]) -> Found:
    """Opens when `count` rejected taps at one device fall within `within_s`; an accepted tap
    there later than the last of them closes it."""
    by_device: dict[str, dict[str, float]] = {}
    for event in [*rejections, *new]:
        if event.type == "tap_rejected":
            by_device.setdefault(event.device_id, {})[event.id] = event.at
    opened = []
    for device_id in sorted(rejecting_devices(new)):
        times = sorted(by_device[device_id].values())
        runs = [times[start + count - 1] - times[start] for start in range(len(times) - count + 1)]
        if any(span <= within_s for span in runs):
            detail = f"{count} or more rejected taps at {device_id} within {within_s:.0f} s"
            opened.append(Anomaly("repeated_rejections", device_id, device_id, detail))
    last_rejected = {device_id: max(times.values()) for device_id, times in by_device.items()}
    closed = [
        ("repeated_rejections", event.device_id)
        for event in new
        if event.type in ACCEPTED and event.at > last_rejected.get(event.device_id, float("-inf"))
    ]
    return Found(opened, closed)


def off_hours(
    shifts: Mapping[str, tuple[Hours, ...]], zone: ZoneInfo, new: Sequence[Seen], roles: Mapping[str, str]
) -> list[Anomaly]:
    """A checkout by a staff member whose role has shifts configured, outside every one of them."""
    opened = []
    for event in new:
        if event.type != "checkout" or not event.staff_id:
            continue
        role = roles.get(event.staff_id)
        hours = shifts.get(role) if role is not None else None
        if not hours:
            continue
        moment = datetime.fromtimestamp(event.at, zone)
        if any(shift.covers(moment) for shift in hours):
            continue
        when = f"{moment:%a %H:%M} {zone.key}"
        detail = f"{event.staff_id} ({role}) checked out {event.device_id} at {when}, outside their role's shifts"
        target = Target(event.device_id, event.site, event.session_id)
        opened.append(Anomaly("off_hours", event.device_id, event.id, detail, (target,)))
    return opened


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)
