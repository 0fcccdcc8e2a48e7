"""A device page's custody in SQL, read from the intervals and sessions kept at ingest
(handoff/ledger/custody.py): the window's intervals counted, filtered, sorted and paged by the
database, and the timeline's bars with the runs too narrow to draw one by one grouped there
too, so that a device used every minute of the week costs one page of rows and a few hundred
shapes, not ten thousand events walked.

The history view's rules (histories.py) are written here as SQL: the same filters, and the same
orders, each ending on the interval's start and then its row, so that pages never shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Integer, Select, and_, case, cast, func, literal, or_, select

from handoff.ledger.console.histories import HistoryView
from handoff.ledger.console.listing import PAGE_ROWS
from handoff.ledger.console.timeline import MIN_PX, USABLE, Placed
from handoff.ledger.queries import UNANSWERED, Interval, Session
from handoff.ledger.schema import RECEIPT, custody, device_sessions, events, staff

WORDS: Final = func.lower(func.coalesce(staff.c.name, "") + literal(" ") + custody.c.staff_id)
"""What the text filter and the `who` order read of an interval: the holder's name and id."""
ORDERS: Final[dict[str, tuple[ColumnElement[Any], ...]]] = {
    "from": (custody.c.start, custody.c.staff_id),
    "to": (custody.c.end.is_(None), func.coalesce(custody.c.end, 0.0), custody.c.start),
    "who": (WORDS, custody.c.start),
    "ended": (func.coalesce(custody.c.ended_by, "~"), custody.c.start),
}


@dataclass(frozen=True)
class DeviceCustody:
    """One device's custody over [since, until] as `view` shows it."""

    device_id: str
    since: float
    until: float
    view: HistoryView
    unanswered: str
    """How a logoff no receipt has answered reads on this device: `pending` or `n/a`."""

    @classmethod
    def of(cls, conn: Connection, device_id: str, since: float, until: float, view: HistoryView) -> DeviceCustody:
        return cls(device_id, since, until, view, "pending" if has_agent(conn, device_id) else "n/a")

    def total(self, conn: Connection) -> int:
        return int(conn.execute(self._chosen(select(func.count()))).scalar_one())

    def rows(self, conn: Connection, page: int | None) -> list[Interval]:
        """The chosen intervals in the view's order: one page of them, or all (`page` None)."""
        order = [column.desc() if self.view.descending else column for column in ORDERS[self.view.order]]
        tiebreak = custody.c.id.desc() if self.view.descending else custody.c.id
        query = self._chosen(
            select(
                custody.c.device_id,
                custody.c.staff_id,
                custody.c.start,
                custody.c.end,
                custody.c.ended_by,
                custody.c.sessions,
                custody.c.logoffs,
            )
        ).order_by(*order, tiebreak)
        if page is not None:
            query = query.offset((page - 1) * PAGE_ROWS).limit(PAGE_ROWS)
        return [
            Interval(
                row.device_id,
                row.staff_id,
                row.start,
                row.end,
                row.ended_by,
                row.sessions,
                self.unanswered if row.logoffs == UNANSWERED else row.logoffs,
            )
            for row in conn.execute(query).all()
        ]

    def first_start(self, conn: Connection) -> float | None:
        """When the window's first interval began (before `since` if one was under way)."""
        first = conn.execute(select(func.min(custody.c.start)).where(self._window(custody))).scalar()
        return None if first is None else float(first)

    def _window(self, table: Any) -> ColumnElement[bool]:
        return and_(
            table.c.device_id == self.device_id,
            table.c.start <= self.until,
            or_(table.c.end.is_(None), table.c.end >= self.since),
        )

    def _chosen(self, query: Select[Any]) -> Select[Any]:
        query = query.select_from(custody.outerjoin(staff, staff.c.staff_id == custody.c.staff_id)).where(
            self._window(custody)
        )
        if self.view.ended == "held":
            query = query.where(custody.c.end.is_(None))
        elif self.view.ended:
            query = query.where(
                custody.c.end.is_not(None), func.coalesce(custody.c.ended_by, "unknown") == self.view.ended
            )
        if self.view.text:
            query = query.where(WORDS.contains(self.view.text.lower(), autoescape=True))
        return query


def has_agent(conn: Connection, device_id: str) -> bool:
    """Whether any agent receipt names this device: its unanswered logoffs are then `pending`,
    else `n/a` (no agent), as the walk says."""
    query = select(events.c.id).where(RECEIPT, events.c.device_id == device_id, events.c.for_id.is_not(None))
    return conn.execute(query.limit(1)).first() is not None


def placed(conn: Connection, kept: DeviceCustody, since: float) -> tuple[list[Placed[Interval]], list[Placed[Session]]]:
    """The intervals and sessions of `kept`'s device over [since, its until] as the timeline
    places them (start order): each one at least MIN_PX wide by itself, the narrower ones
    grouped by the pixel column they start in, with their count (and themselves when alone in
    their column)."""
    device_id, until, unanswered = kept.device_id, kept.until, kept.unanswered

    def interval(row: Any) -> Interval:
        logoffs = unanswered if row.logoffs == UNANSWERED else row.logoffs
        return Interval(device_id, row.staff_id, row.start, row.end, row.ended_by, row.sessions, logoffs)

    def session(row: Any) -> Session:
        logoff = unanswered if row.logoff == UNANSWERED else row.logoff
        return Session(device_id, row.staff_id, row.session_id, row.start, row.end, row.ended_by, logoff)

    bars = (
        _placed(conn, custody, (custody.c.sessions, custody.c.logoffs), device_id, since, until, interval),
        _placed(
            conn,
            device_sessions,
            (device_sessions.c.session_id, device_sessions.c.logoff),
            device_id,
            since,
            until,
            session,
        ),
    )
    return bars


def _placed(
    conn: Connection,
    table: Any,
    extra: tuple[ColumnElement[Any], ...],
    device_id: str,
    since: float,
    until: float,
    made: Any,
) -> list[Any]:
    span = max(until - since, 1e-9)
    scale = USABLE / span
    left = case((table.c.start > since, table.c.start), else_=literal(since))
    right = case((or_(table.c.end.is_(None), table.c.end > until), literal(until)), else_=table.c.end)
    wide = right - left >= MIN_PX / scale
    window = and_(
        table.c.device_id == device_id, table.c.start <= until, or_(table.c.end.is_(None), table.c.end >= since)
    )
    columns = (table.c.staff_id, table.c.start, table.c.end, table.c.ended_by, *extra)
    found: list[Any] = [
        Placed(max(row.start, since), min(until if row.end is None else row.end, until), 1, made(row))
        for row in conn.execute(select(*columns).where(window, wide)).all()
    ]
    column = cast((left - since) * scale, Integer)
    grouped = (
        select(
            func.count().label("many"),
            func.max(right).label("right"),
            *(func.min(part).label(part.name) for part in columns if part.name != "end"),
            func.max(table.c.end).label("end"),
        )
        .where(window, ~wide)
        .group_by(column)
    )
    for row in conn.execute(grouped).all():
        begin = max(row.start, since)
        found.append(Placed(begin, float(row.right), int(row.many), made(row) if row.many == 1 else None))
    return sorted(found, key=lambda item: (item.start, item.end))
