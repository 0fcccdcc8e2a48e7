"""The evidence for a periodic (quarterly) review: for each session-management control, the
configuration in force and what the record shows over a window.

Every figure is an SQL aggregate over the window (counts, groups, one ordered row for a
percentile), never the events themselves brought into Python: a quarter of a large fleet is
tens of millions of events, and the report must still come back in seconds. Nothing here writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, and_, case, exists, func, literal, select
from sqlalchemy.orm import aliased

from handoff.ledger import break_glass
from handoff.ledger.config import LedgerSettings
from handoff.ledger.schema import devices, enrolments, events, exceptions

DAY_S: Final = 86400.0
CONFIRMATION_BUCKETS_S: Final = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds of the confirmation-time histogram's bars; one more bar holds the rest."""
MAX_OPEN_LISTED: Final = 1000


@dataclass(frozen=True)
class Setting:
    name: str
    value: str


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | int | str | None


@dataclass(frozen=True)
class Control:
    """One row of the checklist: what is configured for it, and what the window shows."""

    name: str
    settings: list[Setting]
    figures: list[Figure]


@dataclass(frozen=True)
class ExceptionCounts:
    kind: str
    opened: int
    closed: int
    acknowledged: int
    still_open: int


@dataclass(frozen=True)
class OpenException:
    kind: str
    device_id: str
    opened: float
    detail: str


@dataclass(frozen=True)
class Report:
    start: float
    end: float
    made: float
    controls: list[Control]
    exceptions: list[ExceptionCounts]
    still_open: list[OpenException]
    open_total: int
    daily_checkouts: list[tuple[float, int]]
    confirmation_times: list[tuple[str, int]]
    figures: dict[str, Any] = field(default_factory=dict)
    """Every figure by a stable name, for machines (JSON) and tests."""


def build(conn: Connection, settings: LedgerSettings, start: float, end: float, made: float) -> Report:
    within = and_(events.c.at >= start, events.c.at < end)
    counted = _tally(conn, within)
    tally = counted.by_kind
    ends = {reason or "": total for (kind, reason), (total, _) in tally.items() if kind == "forced_logoff"}
    confirmation, histogram = _confirmation(conn, within)
    counts = _exception_counts(conn, start, end)
    figures: dict[str, Any] = {
        "events": sum(total for total, _ in tally.values()),
        "checkouts": sum(total for (kind, _), (total, _) in tally.items() if kind == "checkout"),
        "session_ends_by_reason": ends,
        "idle_timeouts": ends.get("idle_timeout", 0),
        "role_changes": ends.get("role_changed", 0),
        "forced_logoffs": sum(ends.values()),
        **confirmation,
        "session_ends_reported_unconfirmed": sum(
            total for (kind, _), (total, _) in tally.items() if kind == "logoff_unconfirmed"
        ),
        **_break_glass(conn, within, settings.break_glass_per_30d),
        **_fleet(conn),
        **_integrity(conn, start, end),
        "events_failing_their_link": sum(failing for _, failing in tally.values()),
        **_anomalies(counts),
    }
    figures["confirmed_share"] = (
        figures["logoffs_confirmed"] / figures["forced_logoffs"] if figures["forced_logoffs"] else None
    )
    still_open, open_total = _still_open(conn)
    return Report(
        start,
        end,
        made,
        _controls(settings, figures),
        counts,
        still_open,
        open_total,
        counted.daily_checkouts,
        histogram,
        figures,
    )


@dataclass(frozen=True)
class Tally:
    """The window's events by type and reason (how many, how many fail their link), and its
    checkouts by UTC day: one pass over the window gives every plain count of the report."""

    by_kind: dict[tuple[str, str | None], tuple[int, int]]
    daily_checkouts: list[tuple[float, int]]


def _tally(conn: Connection, within: ColumnElement[bool]) -> Tally:
    failing = func.coalesce(func.sum(case((events.c.chain_ok.is_(False), 1), else_=0)), 0)
    day = func.floor(events.c.at / DAY_S).label("day")
    rows = conn.execute(
        select(events.c.type, events.c.reason, day, func.count(), failing)
        .where(within)
        .group_by(events.c.type, events.c.reason, day)
    )
    by_kind: dict[tuple[str, str | None], tuple[int, int]] = {}
    daily: dict[float, int] = {}
    for kind, reason, number, total, bad in rows:
        before, broken = by_kind.get((str(kind), reason), (0, 0))
        by_kind[(str(kind), reason)] = (before + int(total), broken + int(bad))
        if kind == "checkout":
            daily[float(number) * DAY_S] = daily.get(float(number) * DAY_S, 0) + int(total)
    return Tally(by_kind, sorted(daily.items()))


def _delays(within: ColumnElement[bool]) -> Any:
    """Seconds from each forced logoff in the window to its confirmation on its own device.
    A trusted appliance confirms a session end once (a receipt counts only while the end is
    unconfirmed), so a plain join gives one row per confirmed logoff, with no grouping to spill."""
    confirmed = aliased(events)
    return (
        select((confirmed.c.at - events.c.at).label("delay"))
        .select_from(
            events.join(
                confirmed,
                and_(
                    confirmed.c.for_id == events.c.id,
                    confirmed.c.device_id == events.c.device_id,
                    confirmed.c.type == "logoff_confirmed",
                ),
            )
        )
        .where(within, events.c.type == "forced_logoff")
        .subquery()
    )


def _confirmation(conn: Connection, within: ColumnElement[bool]) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """How many forced logoffs were confirmed, the median and 99th percentile of the time it
    took, and the histogram of those times, in one pass over the join where the database can
    (PostgreSQL's percentile_disc is the nearest rank); SQLite reads each percentile as one
    row of an ordered query."""
    delays = _delays(within)
    bounds = CONFIRMATION_BUCKETS_S
    buckets = [
        func.coalesce(func.sum(case((and_(delays.c.delay > low, delays.c.delay <= high), 1), else_=0)), 0)
        for low, high in zip((-math.inf, *bounds), (*bounds, math.inf), strict=True)
    ]
    columns: list[Any] = [func.count(), *buckets]
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        columns += [func.percentile_disc(fraction).within_group(delays.c.delay) for fraction in (0.5, 0.99)]
    row = conn.execute(select(*columns).select_from(delays)).one()
    total = int(row[0])
    if postgres:
        median, p99 = row[-2], row[-1]
    else:
        median, p99 = (_nearest_rank(conn, delays, total, fraction) for fraction in (0.5, 0.99))
    labels = [f"≤ {bound:g} s" for bound in bounds] + [f"> {bounds[-1]:g} s"]
    histogram = [(label, int(count)) for label, count in zip(labels, row[1 : len(labels) + 1], strict=True)]
    figures = {
        "logoffs_confirmed": total,
        "confirmation_median_s": None if median is None else float(median),
        "confirmation_p99_s": None if p99 is None else float(p99),
    }
    return figures, histogram


def _nearest_rank(conn: Connection, delays: Any, total: int, fraction: float) -> float | None:
    """The value at rank ceil(fraction * total), read as one row of an ordered query."""
    if not total:
        return None
    rank = max(1, math.ceil(fraction * total))
    query = select(delays.c.delay).order_by(delays.c.delay).offset(rank - 1).limit(1)
    return float(conn.execute(query).scalar_one())


def _break_glass(conn: Connection, within: ColumnElement[bool], limit: int) -> dict[str, Any]:
    """Uses in the window, those over the per-person limit (counted over the 30 days up to each
    use, across devices), and how many of their reviews an admin has closed."""
    earlier = aliased(events)
    before = (
        select(func.count())
        .where(
            earlier.c.type == "break_glass",
            earlier.c.staff_id == events.c.staff_id,
            earlier.c.at > events.c.at - break_glass.WINDOW_S,
            earlier.c.at <= events.c.at,
        )
        .scalar_subquery()
    )
    review = and_(exceptions.c.type == break_glass.KIND, exceptions.c.key == literal("break_glass:") + events.c.id)
    reviewed = exists().where(review, exceptions.c.closed.is_not(None))
    used, over, done = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((before > limit, 1), else_=0)), 0),
            func.coalesce(func.sum(case((reviewed, 1), else_=0)), 0),
        ).where(within, events.c.type == "break_glass")
    ).one()
    reviewed_count = int(done)
    return {
        "break_glass_uses": int(used),
        "break_glass_over_limit": int(over),
        "break_glass_reviewed": reviewed_count,
        "break_glass_not_reviewed": int(used) - reviewed_count,
    }


def _fleet(conn: Connection) -> dict[str, Any]:
    enrolled = int(conn.execute(select(func.count()).select_from(enrolments)).scalar_one())
    with_agents = int(
        conn.execute(select(func.count()).select_from(enrolments).where(enrolments.c.agent_keys != "[]")).scalar_one()
    )
    heard = int(conn.execute(select(func.count()).select_from(devices)).scalar_one())
    agents = list(
        conn.execute(
            select(enrolments.c.device_id).where(enrolments.c.agent_keys != "[]").order_by(enrolments.c.device_id)
        ).scalars()
    )
    return {
        "devices_heard": heard,
        "devices_enrolled": enrolled,
        "devices_with_agents": with_agents,
        "devices_with_agents_listed": agents[:MAX_OPEN_LISTED],
    }


def _integrity(conn: Connection, start: float, end: float) -> dict[str, Any]:
    opened = and_(exceptions.c.opened >= start, exceptions.c.opened < end)

    def kinds(kind: str) -> int:
        query = select(func.count()).select_from(exceptions).where(opened, exceptions.c.type == kind)
        return int(conn.execute(query).scalar_one())

    return {"gaps_opened": kinds("seq_gap"), "chain_breaks_opened": kinds("chain_break")}


def _exception_counts(conn: Connection, start: float, end: float) -> list[ExceptionCounts]:
    """Per exception type (whatever types the ledger opens): opened, closed and acknowledged
    within the window, and open now."""

    def within(column: Any) -> Any:
        return func.coalesce(func.sum(case((and_(column >= start, column < end), 1), else_=0)), 0)

    rows = conn.execute(
        select(
            exceptions.c.type,
            within(exceptions.c.opened),
            within(exceptions.c.closed),
            within(exceptions.c.acked_at),
            func.coalesce(func.sum(case((exceptions.c.closed.is_(None), 1), else_=0)), 0),
        )
        .group_by(exceptions.c.type)
        .order_by(exceptions.c.type)
    )
    return [ExceptionCounts(str(kind), int(a), int(b), int(c), int(d)) for kind, a, b, c, d in rows]


ANOMALIES: Final = ("concurrent_use", "impossible_travel", "repeated_rejections", "off_hours")


def _anomalies(counts: list[ExceptionCounts]) -> dict[str, Any]:
    """The anomaly kinds' counts in the window, from the per-type counts already made."""
    found = {count.kind: count for count in counts if count.kind in ANOMALIES}
    return {
        "anomalies_opened": sum(count.opened for count in found.values()),
        "anomalies_closed": sum(count.closed for count in found.values()),
        "anomalies_acknowledged": sum(count.acknowledged for count in found.values()),
        "anomalies_still_open": sum(count.still_open for count in found.values()),
    }


def _anomaly_settings(settings: LedgerSettings) -> list[Setting]:
    rules = settings.anomalies
    rejections = (
        f"{rules.repeated_rejections} within {_seconds(rules.rejections_within_s)}"
        if rules.repeated_rejections
        else "off"
    )
    travel = ", ".join(f"{' / '.join(t.sites)} {_seconds(t.min_s)}" for t in rules.travel) or "off"
    shifts = ", ".join(f"{shift.role} {shift.start}-{shift.end}" for shift in rules.shifts) or "off"
    return [
        Setting("concurrent_use", "on" if rules.concurrent_use else "off"),
        Setting("repeated_rejections", rejections),
        Setting("impossible_travel (sites, shortest time)", travel),
        Setting(f"off_hours (shifts, {rules.time_zone})", shifts),
        Setting("answered by ending the older session", ", ".join(rules.respond) or "none"),
    ]


def _still_open(conn: Connection) -> tuple[list[OpenException], int]:
    is_open = exceptions.c.closed.is_(None)
    total = int(conn.execute(select(func.count()).select_from(exceptions).where(is_open)).scalar_one())
    rows = conn.execute(
        select(exceptions.c.type, exceptions.c.device_id, exceptions.c.opened, exceptions.c.detail)
        .where(is_open)
        .order_by(exceptions.c.opened, exceptions.c.id)
        .limit(MAX_OPEN_LISTED)
    )
    return [OpenException(kind, device, float(opened), detail) for kind, device, opened, detail in rows], total


def _some(total: int, names: list[str], shown: int = 20) -> str:
    """How many, and the first few by name (JSON lists the first thousand)."""
    more = f", and {total - shown} more" if total > shown else ""
    return f"{total}" + (f": {', '.join(names[:shown])}{more}" if names else "")


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _controls(settings: LedgerSettings, f: dict[str, Any]) -> list[Control]:
    """The checklist's rows (docs/hipaa.md), each with its configuration and its figures."""
    per_appliance = "set per appliance ([policy]); the figures show its effect"
    signing = "every message believed only under the device's enrolled key"
    return [
        Control(
            "Automatic logoff",
            [
                Setting("idle_timeout_s, max_session_s", per_appliance),
                Setting(
                    "devices with an agent confirming logoffs",
                    _some(f["devices_with_agents"], f["devices_with_agents_listed"]),
                ),
            ],
            [
                Figure("sessions ended by idle timeout", f["idle_timeouts"]),
                Figure("sessions ended (forced logoff), all reasons", f["forced_logoffs"]),
                Figure("forced logoffs confirmed by the agent", f["logoffs_confirmed"]),
                Figure("share of forced logoffs confirmed", f["confirmed_share"]),
                Figure("median seconds from forced logoff to confirmation", f["confirmation_median_s"]),
                Figure("99th percentile seconds from forced logoff to confirmation", f["confirmation_p99_s"]),
                Figure("session ends the appliance reported unconfirmed", f["session_ends_reported_unconfirmed"]),
            ],
        ),
        Control(
            "Emergency access (break-glass) and the review of each use",
            [Setting("break_glass_per_30d (ledger, per person, all devices)", str(settings.break_glass_per_30d))],
            [
                Figure("break-glass uses", f["break_glass_uses"]),
                Figure("uses over the limit", f["break_glass_over_limit"]),
                Figure("uses reviewed by an admin", f["break_glass_reviewed"]),
                Figure("uses not yet reviewed", f["break_glass_not_reviewed"]),
            ],
        ),
        Control(
            "Anomalous session detection with an automated response",
            _anomaly_settings(settings),
            [
                Figure("anomalies opened", f["anomalies_opened"]),
                Figure("anomalies closed", f["anomalies_closed"]),
                Figure("anomalies acknowledged", f["anomalies_acknowledged"]),
                Figure("anomalies still open", f["anomalies_still_open"]),
            ],
        ),
        Control(
            "Sessions end on role change",
            [Setting("directory updates", "CSV import or signed cmd/directory on each appliance")],
            [Figure("sessions ended by a role change", f["role_changes"])],
        ),
        Control(
            "Audit controls and integrity of the record",
            [
                Setting("trust", "every message believed" if settings.allow_untrusted else signing),
                Setting("devices enrolled", str(f["devices_enrolled"])),
                Setting("devices heard", str(f["devices_heard"])),
                Setting("appliance offline after", _seconds(settings.offline_after_s)),
            ],
            [
                Figure("events recorded", f["events"]),
                Figure("checkouts", f["checkouts"]),
                Figure("gaps opened (missing seq)", f["gaps_opened"]),
                Figure("chain breaks opened", f["chain_breaks_opened"]),
                Figure("events whose link does not verify", f["events_failing_their_link"]),
            ],
        ),
        Control(
            "Custody of shared devices",
            [
                Setting("overdue after", _seconds(settings.overdue_after_s)),
                Setting("holds many above", str(settings.holds_many)),
            ],
            [Figure("checkouts", f["checkouts"])],
        ),
        Control(
            "Keep completed checklists six years",
            [Setting("retain_days", str(settings.retain_days))],
            [],
        ),
    ]
