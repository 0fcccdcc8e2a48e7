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
    ends = _session_ends(conn, within)
    confirmation = _confirmation(conn, within)
    uses = _break_glass(conn, within, settings.break_glass_per_30d)
    fleet = _fleet(conn)
    integrity = _integrity(conn, within, start, end)
    counts = _exception_counts(conn, start, end)
    figures: dict[str, Any] = {
        "events": _count(conn, within),
        "checkouts": _count(conn, and_(within, events.c.type == "checkout")),
        "session_ends_by_reason": ends,
        "idle_timeouts": ends.get("idle_timeout", 0),
        "role_changes": ends.get("role_changed", 0),
        **confirmation,
        **uses,
        **fleet,
        **integrity,
    }
    still_open, open_total = _still_open(conn)
    return Report(
        start,
        end,
        made,
        _controls(settings, figures),
        counts,
        still_open,
        open_total,
        _daily(conn, within),
        _histogram(conn, within),
        figures,
    )


def _count(conn: Connection, where: ColumnElement[bool]) -> int:
    return int(conn.execute(select(func.count()).select_from(events).where(where)).scalar_one())


def _session_ends(conn: Connection, within: ColumnElement[bool]) -> dict[str, int]:
    rows = conn.execute(
        select(events.c.reason, func.count())
        .where(within, events.c.type == "forced_logoff")
        .group_by(events.c.reason)
        .order_by(events.c.reason)
    )
    return {str(reason): int(total) for reason, total in rows}


def _confirmations() -> Any:
    """Each session end's first confirmation on its own device: (for_id, device_id, at)."""
    confirmed = aliased(events)
    return (
        select(confirmed.c.for_id, confirmed.c.device_id, func.min(confirmed.c.at).label("at"))
        .where(confirmed.c.type == "logoff_confirmed")
        .group_by(confirmed.c.for_id, confirmed.c.device_id)
        .subquery()
    )


def _delays(within: ColumnElement[bool]) -> Any:
    """Seconds from each forced logoff in the window to its confirmation, for those confirmed."""
    confirmed = _confirmations()
    return (
        select((confirmed.c.at - events.c.at).label("delay"))
        .select_from(
            events.join(confirmed, and_(confirmed.c.for_id == events.c.id, confirmed.c.device_id == events.c.device_id))
        )
        .where(within, events.c.type == "forced_logoff")
        .subquery()
    )


def _confirmation(conn: Connection, within: ColumnElement[bool]) -> dict[str, Any]:
    ended = _count(conn, and_(within, events.c.type == "forced_logoff"))
    delays = _delays(within)
    confirmed = int(conn.execute(select(func.count()).select_from(delays)).scalar_one())
    unconfirmed_event = aliased(events)
    unconfirmed = _count(
        conn,
        and_(
            within,
            events.c.type == "forced_logoff",
            exists().where(
                unconfirmed_event.c.type == "logoff_unconfirmed",
                unconfirmed_event.c.for_id == events.c.id,
                unconfirmed_event.c.device_id == events.c.device_id,
            ),
        ),
    )
    return {
        "forced_logoffs": ended,
        "logoffs_confirmed": confirmed,
        "logoffs_reported_unconfirmed": unconfirmed,
        "confirmed_share": confirmed / ended if ended else None,
        "confirmation_median_s": _percentile(conn, delays, confirmed, 0.5),
        "confirmation_p99_s": _percentile(conn, delays, confirmed, 0.99),
    }


def _percentile(conn: Connection, delays: Any, total: int, fraction: float) -> float | None:
    """Nearest rank: the value at rank ceil(fraction * total), read as one row of an ordered
    query, which both SQLite and PostgreSQL answer without sending the rest."""
    if not total:
        return None
    rank = max(1, math.ceil(fraction * total))
    query = select(delays.c.delay).order_by(delays.c.delay).offset(rank - 1).limit(1)
    return float(conn.execute(query).scalar_one())


def _histogram(conn: Connection, within: ColumnElement[bool]) -> list[tuple[str, int]]:
    delays = _delays(within)
    bounds = CONFIRMATION_BUCKETS_S
    bucket = case(
        *((delays.c.delay <= bound, index) for index, bound in enumerate(bounds)),
        else_=len(bounds),
    ).label("bucket")
    counted: dict[int, int] = {
        int(index): int(total) for index, total in conn.execute(select(bucket, func.count()).group_by(bucket))
    }
    labels = [f"≤ {bound:g} s" for bound in bounds] + [f"> {bounds[-1]:g} s"]
    return [(label, int(counted.get(index, 0))) for index, label in enumerate(labels)]


def _daily(conn: Connection, within: ColumnElement[bool]) -> list[tuple[float, int]]:
    """Checkouts per UTC day (a handoff, or a device taken from the shelf)."""
    day = func.floor(events.c.at / DAY_S).label("day")
    rows = conn.execute(
        select(day, func.count()).where(within, events.c.type == "checkout").group_by(day).order_by(day)
    )
    return [(float(number) * DAY_S, int(total)) for number, total in rows]


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
    is_use = and_(within, events.c.type == "break_glass")
    used, over = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((before > limit, 1), else_=0)), 0)).where(is_use)
    ).one()
    review = and_(exceptions.c.type == break_glass.KIND, exceptions.c.key == literal("break_glass:") + events.c.id)
    reviewed = _count(conn, and_(is_use, exists().where(review, exceptions.c.closed.is_not(None))))
    return {
        "break_glass_uses": int(used),
        "break_glass_over_limit": int(over),
        "break_glass_reviewed": reviewed,
        "break_glass_not_reviewed": int(used) - reviewed,
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


def _integrity(conn: Connection, within: ColumnElement[bool], start: float, end: float) -> dict[str, Any]:
    opened = and_(exceptions.c.opened >= start, exceptions.c.opened < end)

    def kinds(kind: str) -> int:
        return int(
            conn.execute(
                select(func.count()).select_from(exceptions).where(opened, exceptions.c.type == kind)
            ).scalar_one()
        )

    return {
        "gaps_opened": kinds("seq_gap"),
        "chain_breaks_opened": kinds("chain_break"),
        "events_failing_their_link": _count(conn, and_(within, events.c.chain_ok.is_(False))),
    }


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
                Setting("devices with an agent confirming logoffs", str(f["devices_with_agents"])),
            ],
            [
                Figure("sessions ended by idle timeout", f["idle_timeouts"]),
                Figure("sessions ended (forced logoff), all reasons", f["forced_logoffs"]),
                Figure("forced logoffs confirmed by the agent", f["logoffs_confirmed"]),
                Figure("share of forced logoffs confirmed", f["confirmed_share"]),
                Figure("median seconds from forced logoff to confirmation", f["confirmation_median_s"]),
                Figure("99th percentile seconds from forced logoff to confirmation", f["confirmation_p99_s"]),
                Figure("forced logoffs reported unconfirmed", f["logoffs_reported_unconfirmed"]),
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
