"""Each device's custody intervals and sessions, kept in the `custody` and `device_sessions`
tables as its events are stored, so that a device page reads one page of intervals and its
timeline's bars instead of walking every event of its window (docs/ledger.md).

The tables always hold what the walk of all of a device's stored events (`queries.Walk`) finds.
A checkout ends whatever came before it, so a new event can change only the intervals from the
last checkout before it on, and only up to the first interval that starts after it: that span,
and nothing else, is walked again and replaced. Events in time order, the usual case, re-walk
the interval in progress; a late one re-walks the intervals around it; a receipt re-walks the
interval of the logoff it answers; pruning re-walks what the pruned events touched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final, NamedTuple

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, delete, func, or_, select, text, union_all
from sqlalchemy.orm import aliased

from handoff.ledger.database import insert_rows
from handoff.ledger.queries import RECEIPTS, ROW_COLUMNS, SESSION, UNANSWERED, Row, Walk
from handoff.ledger.schema import RECEIPT, custody, device_sessions, events

CHUNK: Final = 500
"""Devices re-walked, or ids looked up, per statement."""
UNION: Final = 200
"""Devices per UNION ALL (SQLite allows 500 terms in one)."""
ENDS: Final = ("forced_logoff", "checkin")
"""The events a receipt can answer."""


class Touched(NamedTuple):
    """One newly stored event that may change its device's intervals: a session event, or a
    receipt (`for_id`: the logoff it answers)."""

    device_id: str
    type: str
    at: float
    for_id: str | None


class Span(NamedTuple):
    """The times a device's intervals may have changed over: `low` None is its first event."""

    low: float | None
    high: float


def keep(conn: Connection, touched: Iterable[Touched]) -> None:
    """After an ingest batch: re-walk what its session events and receipts can change."""
    spans: dict[str, Span] = {}
    answered: dict[str, str] = {}
    for event in touched:
        if event.type in SESSION:
            _widen(spans, event.device_id, event.at, event.at)
        elif event.type in RECEIPTS and event.for_id:
            answered[event.for_id] = event.device_id
    for chunk in _chunks(sorted(answered)):
        ends = select(events.c.id, events.c.device_id, events.c.at).where(events.c.id.in_(chunk))
        for event_id, device_id, at in conn.execute(ends):
            if answered[event_id] == device_id:
                _widen(spans, device_id, at, at)
    refresh(conn, spans)


def pruning(conn: Connection, source: str, seq: int) -> dict[str, float]:
    """Before `source`'s events up to `seq` are pruned: per device, the latest time whose
    intervals the pruning changes (a pruned event's, or the logoff a pruned receipt answered)."""
    gone = and_(events.c.source == source, events.c.seq <= seq)
    reach = dict(
        conn.execute(select(events.c.device_id, func.max(events.c.at)).where(gone).group_by(events.c.device_id)).all()
    )
    receipt, answered = events.alias("receipt"), aliased(events, name="answered")
    unanswered = (
        select(answered.c.device_id, func.max(answered.c.at))
        .select_from(
            receipt.join(answered, and_(answered.c.id == receipt.c.for_id, answered.c.device_id == receipt.c.device_id))
        )
        .where(receipt.c.source == source, receipt.c.seq <= seq, receipt.c.type.in_(RECEIPTS))
        .group_by(answered.c.device_id)
    )
    for device_id, at in conn.execute(unanswered):
        reach[device_id] = max(reach.get(device_id, at), at)
    return {device_id: float(at) for device_id, at in reach.items()}


def pruned(conn: Connection, reach: dict[str, float]) -> None:
    """After pruning: each device walked again from its first remaining event to `reach`."""
    refresh(conn, {device_id: Span(None, high) for device_id, high in reach.items()})


def rebuild(conn: Connection) -> int:
    """Every device's intervals walked from all its events: the migration that brings the
    tables in, and a ledger whose events were written other than by ingest. Returns how many
    devices."""
    conn.execute(delete(custody))
    conn.execute(delete(device_sessions))
    found = sorted(conn.execute(select(events.c.device_id).where(events.c.type == "checkout").distinct()).scalars())
    for chunk in _chunks(found):
        refresh(conn, {device_id: Span(None, float("inf")) for device_id in chunk})
    return len(found)


def refresh(conn: Connection, spans: dict[str, Span]) -> None:
    """Replace each device's intervals and sessions that start from the last checkout before
    its span's `low` up to (not including) the first stored interval that starts after its
    `high`, with those the walk of its events over that stretch finds."""
    for chunk in _chunks(sorted(spans)):
        mine = {device_id: spans[device_id] for device_id in chunk}
        froms = _walk_froms(conn, mine)
        stops = _stops(conn, mine)
        bounds = [{"key": d, "low": froms.get(d, float("-inf")), "high": stops.get(d, float("inf"))} for d in chunk]
        for table in (custody, device_sessions):
            conn.execute(
                delete(table).where(
                    table.c.device_id == bindparam("key"),
                    table.c.start >= bindparam("low"),
                    table.c.start < bindparam("high"),
                ),
                bounds,
            )
        rows = _rows(conn, chunk, froms, stops)
        answers = _answers(conn, rows)
        intervals: list[dict[str, Any]] = []
        sessions: list[dict[str, Any]] = []
        for device_id in chunk:
            stop = stops.get(device_id, float("inf"))
            walk = Walk(device_id, answers[device_id], UNANSWERED)
            for row in rows[device_id]:
                walk.take(row)
            intervals += [dict(vars(held)) for held in _before(walk.finish(), stop)]
            sessions += [dict(vars(session)) for session in _before(walk.sessions, stop)]
        insert_rows(conn, custody, intervals)
        insert_rows(conn, device_sessions, sessions)


def _widen(spans: dict[str, Span], device_id: str, low: float, high: float) -> None:
    was = spans.get(device_id)
    if was is None or was.low is None:
        spans[device_id] = Span(low if was is None else None, high if was is None else max(was.high, high))
    else:
        spans[device_id] = Span(min(was.low, low), max(was.high, high))


def _walk_froms(conn: Connection, spans: dict[str, Span]) -> dict[str, float]:
    """Per device, the last checkout before its span where no other session event shares the
    checkout's time (events of one instant are walked by seq, so one of them before the
    checkout would belong to the interval before it); devices without one are walked from
    their first event."""
    asked = {device_id: span.low for device_id, span in spans.items() if span.low is not None}
    froms: dict[str, float] = {}
    while asked:
        found = _nearest(conn, LAST_CHECKOUT, asked)
        if not found:
            break
        crowded = _crowded(conn, found)
        froms.update({device_id: at for device_id, at in found.items() if device_id not in crowded})
        asked = {device_id: found[device_id] for device_id in crowded}
    return froms


def _crowded(conn: Connection, checkouts: dict[str, float]) -> set[str]:
    """The devices with another session event at the instant of their checkout."""
    if conn.dialect.name == "postgresql":
        shared = {"ids": list(checkouts), "ats": list(checkouts.values())}
        return set(conn.execute(text(CROWDED), shared).scalars())
    same = _by_device(checkouts, lambda at: events.c.at == at)
    query = select(events.c.device_id).where(same, events.c.type.in_(SESSION), events.c.type != "checkout")
    return set(conn.execute(query).scalars())


def _stops(conn: Connection, spans: dict[str, Span]) -> dict[str, float]:
    """Per device, the start of the first stored interval after its span: from there on
    nothing changed."""
    return _nearest(
        conn, FIRST_AFTER, {device_id: span.high for device_id, span in spans.items() if span.high != float("inf")}
    )


STRETCHES: Final = (
    "SELECT e.device_id, e.id, e.type, e.staff_id, e.session_id, e.at, e.reason"
    " FROM unnest(CAST(:ids AS text[]), CAST(:froms AS float8[]), CAST(:stops AS float8[])) AS d(device_id, f, s)"
    " JOIN events e ON e.device_id = d.device_id AND e.at >= d.f AND e.at <= d.s"
    " WHERE e.type IN ('checkout', 'reauth', 'forced_logoff', 'checkin') ORDER BY e.device_id, e.at, e.seq"
)
"""`_rows` on PostgreSQL: the columns of `queries.ROW_COLUMNS`, the types of `queries.SESSION`."""
CROWDED: Final = (
    "SELECT DISTINCT e.device_id FROM unnest(CAST(:ids AS text[]), CAST(:ats AS float8[])) AS d(device_id, a)"
    " JOIN events e ON e.device_id = d.device_id AND e.at = d.a WHERE e.type IN ('reauth', 'forced_logoff', 'checkin')"
)


class _Nearest(NamedTuple):
    """How to ask, per device, for the one time nearest a bound."""

    postgresql: str
    """One statement over the arrays of devices (`ids`) and bounds (`bounds`)."""
    sqlite: Callable[[str, float], Select[Any]]
    """One device's question, ordered, for a UNION ALL of LIMIT 1s."""


LAST_CHECKOUT: Final = _Nearest(
    "SELECT d.device_id, n.at FROM unnest(CAST(:ids AS text[]), CAST(:bounds AS float8[])) AS d(device_id, b)"
    " CROSS JOIN LATERAL (SELECT events.at FROM events WHERE events.device_id = d.device_id AND events.at < d.b"
    " AND events.type = 'checkout' ORDER BY events.at DESC LIMIT 1) AS n",
    lambda device_id, bound: (
        select(events.c.device_id, events.c.at)
        .where(events.c.device_id == device_id, events.c.at < bound, events.c.type == "checkout")
        .order_by(events.c.at.desc())
    ),
)
FIRST_AFTER: Final = _Nearest(
    "SELECT d.device_id, n.start FROM unnest(CAST(:ids AS text[]), CAST(:bounds AS float8[])) AS d(device_id, b)"
    " CROSS JOIN LATERAL (SELECT custody.start FROM custody WHERE custody.device_id = d.device_id"
    " AND custody.start > d.b ORDER BY custody.start LIMIT 1) AS n",
    lambda device_id, bound: (
        select(custody.c.device_id, custody.c.start)
        .where(custody.c.device_id == device_id, custody.c.start > bound)
        .order_by(custody.c.start)
    ),
)


def _nearest(conn: Connection, nearest: _Nearest, bounds: dict[str, float]) -> dict[str, float]:
    """Per device, the time nearest its bound, each a short walk of the (device, time) index
    where a GROUP BY over the devices' ranges would read all of their past. PostgreSQL gets
    them in one statement (a LATERAL join over arrays: one plan, where a UNION ALL of as many
    LIMIT 1s took longer to plan than to run); SQLite, without LATERAL, in a UNION ALL, whose
    planning costs it little."""
    if not bounds:
        return {}
    if conn.dialect.name == "postgresql":
        found = conn.execute(text(nearest.postgresql), {"ids": list(bounds), "bounds": list(bounds.values())})
        return {device_id: float(at) for device_id, at in found}
    parts = [nearest.sqlite(device_id, bound).limit(1).subquery() for device_id, bound in bounds.items()]
    result: dict[str, float] = {}
    for start in range(0, len(parts), UNION):
        rows = conn.execute(union_all(*(select(part) for part in parts[start : start + UNION])))
        result.update({device_id: float(at) for device_id, at in rows})
    return result


def _rows(
    conn: Connection, device_ids: Sequence[str], froms: dict[str, float], stops: dict[str, float]
) -> dict[str, list[Row]]:
    """The devices' session events from their walk's start up to and including their stop's
    instant (the checkout there ends the last interval walked), in walk order. PostgreSQL is
    asked with a join over arrays (one short statement, one plan, index ranges); SQLite with
    an OR per device, devices walked whole in one IN."""

    def stretch(device_id: str) -> ColumnElement[bool]:
        parts = [events.c.device_id == device_id]
        if device_id in froms:
            parts.append(events.c.at >= froms[device_id])
        if device_id in stops:
            parts.append(events.c.at <= stops[device_id])
        return and_(*parts)

    found: dict[str, list[Row]] = defaultdict(list)
    if conn.dialect.name == "postgresql":
        bounds = {
            "ids": list(device_ids),
            "froms": [froms.get(device_id, float("-inf")) for device_id in device_ids],
            "stops": [stops.get(device_id, float("inf")) for device_id in device_ids],
        }
        for device_id, *row in conn.execute(text(STRETCHES), bounds).all():
            found[device_id].append(Row(*row))
        return found
    whole = [device_id for device_id in device_ids if device_id not in froms and device_id not in stops]
    parts = [stretch(device_id) for device_id in device_ids if device_id in froms or device_id in stops]
    if whole:
        parts.append(events.c.device_id.in_(whole))
    query = select(events.c.device_id, *ROW_COLUMNS).where(or_(*parts), events.c.type.in_(SESSION))
    for device_id, *row in conn.execute(query.order_by(events.c.device_id, events.c.at, events.c.seq)).all():
        found[device_id].append(Row(*row))
    return found


def _answers(conn: Connection, rows: dict[str, list[Row]]) -> dict[str, dict[str, str]]:
    """Per device, the receipts' outcome for each logoff walked: confirmed once any receipt
    confirmed it, else unconfirmed (`queries` reads them the same way)."""
    ends = {row.id: device_id for device_id, walked in rows.items() for row in walked if row.type in ENDS}
    answers: dict[str, dict[str, str]] = defaultdict(dict)
    for chunk in _chunks(sorted(ends)):
        query = select(events.c.device_id, events.c.type, events.c.for_id).where(RECEIPT, events.c.for_id.in_(chunk))
        for device_id, kind, for_id in conn.execute(query):
            if ends[for_id] == device_id and answers[device_id].get(for_id) != "confirmed":
                answers[device_id][for_id] = "confirmed" if kind == "logoff_confirmed" else "unconfirmed"
    return answers


def _by_device(values: dict[str, float], condition: Any, table: Any = events) -> ColumnElement[bool]:
    return or_(*(and_(table.c.device_id == device_id, condition(value)) for device_id, value in values.items()))


def _before(found: list[Any], stop: float) -> Iterator[Any]:
    return (item for item in found if item.start < stop)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
