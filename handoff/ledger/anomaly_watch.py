"""Anomalies in ingest: read what the rules need about a batch's new trusted events, open and
close their exceptions, and queue the automated responses, all in the batch's transaction.

Only the events `Recorder` believed reach here, so a forged message opens nothing and ends no
session. Each question is one indexed query per batch (a staff id's devices, its taps around
the batch's, a device's rejected taps around the batch's), never one per event, and none is
asked when its rule is off: with every rule on they took 8-9 % of ingest CPU on a busy fleet's
backlog (bench/anomaly_cost.py, bench/README.md).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final, Protocol

from sqlalchemy import Column, ColumnElement, Connection, String, any_, func, literal, select
from sqlalchemy.dialects import postgresql

from handoff.ledger import responses
from handoff.ledger.anomalies import (
    TAPS,
    Live,
    Rules,
    Seen,
    State,
    checkout_staff,
    detect,
    rejecting_devices,
    session_staff,
    tapping_staff,
)
from handoff.ledger.schema import devices, events, staff


class Book(Protocol):
    """The batch's open exceptions (ingest.Exceptions)."""

    now: float

    def open(self, kind: str, device_id: str, source: str, key: str, detail: str) -> int | None: ...

    def close(self, kind: str, key: str) -> None: ...


def watch(conn: Connection, book: Book, rules: Rules, new: list[Seen], state: State) -> None:
    """Open and close the batch's anomalies; queue a response to each one that opens, when its
    kind is in `respond`."""
    found = detect(rules, new, state)
    for anomaly in found.opened:
        exception_id = book.open(anomaly.kind, anomaly.device_id, "", anomaly.key, anomaly.detail)
        if exception_id is not None and anomaly.kind in rules.respond:
            for target in anomaly.targets:
                responses.queue(conn, exception_id, target, book.now)
    for kind, key in found.closed:
        book.close(kind, key)


def read(conn: Connection, rules: Rules, new: list[Seen]) -> State:
    """What the rules need about the batch: read once its events are stored, before the
    devices' holders move on to them (the sessions live before the batch)."""
    live: list[Live] = []
    taps: list[Seen] = []
    rejections: list[Seen] = []
    roles: dict[str, str] = {}
    if rules.concurrent_use and (staff_ids := session_staff(new)):
        query = select(devices.c.staff_id, devices.c.device_id, devices.c.site, devices.c.session_id, devices.c.since)
        rows = conn.execute(query.where(_among(conn, devices.c.staff_id, staff_ids), devices.c.state == "in_use"))
        live = [Live(row.staff_id, row.device_id, row.site, row.session_id, row.since or 0.0) for row in rows]
    if rules.travel and (staff_ids := tapping_staff(new)):
        taps = _taps_around(conn, staff_ids, [event.at for event in new if event.type in TAPS], rules.longest_trip_s)
    if rules.rejections and (device_ids := rejecting_devices(new)):
        times = [event.at for event in new if event.type == "tap_rejected"]
        rejections = _events(
            conn,
            _among(conn, events.c.device_id, device_ids),
            events.c.type == "tap_rejected",
            events.c.at >= min(times) - rules.within_s,
            events.c.at <= max(times) + rules.within_s,
        )
    if rules.shifts and (staff_ids := checkout_staff(new)):
        query = select(staff.c.staff_id, staff.c.role).where(_among(conn, staff.c.staff_id, staff_ids))
        roles = {str(row.staff_id): str(row.role) for row in conn.execute(query)}
    return State(live, taps, rejections, roles)


SEEN: Final = (
    events.c.id,
    events.c.type,
    events.c.site,
    events.c.device_id,
    events.c.staff_id,
    events.c.session_id,
    events.c.at,
)


def _events(conn: Connection, *where: ColumnElement[bool]) -> list[Seen]:
    return [Seen(*row) for row in conn.execute(select(*SEEN).where(*where))]


def _taps_around(conn: Connection, staff_ids: Collection[str], times: list[float], reach: float) -> list[Seen]:
    """The staff ids' taps within the batch's span, and each one's last tap before it and first
    after it within `reach`: the only taps a new one can be next to. The ranking is left to the
    database, so a backlog's batch (minutes of taps) does not bring back every tap in reach."""
    low, high = min(times), max(times)
    among = _among(conn, events.c.staff_id, staff_ids)
    found = _events(conn, among, events.c.type.in_(TAPS), events.c.at >= low, events.c.at <= high)
    for beyond, nearest in (
        ((events.c.at < low, events.c.at > low - reach), events.c.at.desc()),
        ((events.c.at > high, events.c.at < high + reach), events.c.at.asc()),
    ):
        rank = func.row_number().over(partition_by=events.c.staff_id, order_by=nearest).label("rank")
        ranked = select(*SEEN, rank).where(among, events.c.type.in_(TAPS), *beyond).subquery()
        rows = conn.execute(select(*(ranked.c[column.name] for column in SEEN)).where(ranked.c.rank == 1))
        found += [Seen(*row) for row in rows]
    return found


def _among(conn: Connection, column: Column[Any], values: Collection[str]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `= ANY(array)`, one statement whatever the batch holds,
    which psycopg parses once (see ingest._stored)."""
    if conn.dialect.name == "postgresql":
        return column == any_(literal(sorted(values), postgresql.ARRAY(String)))
    return column.in_(sorted(values))
