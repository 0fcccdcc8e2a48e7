"""Who holds each device now, kept on its `devices` row as its trusted events arrive: what the
fleet page, `overdue` and `holds_many` read.

It is the same answer as `queries.who` at the latest instant, found cheaply: a batch's events
that are all newer than the last one applied to the row are folded onto the row; a batch that
holds an older event (a hole filled late) asks `who` again. Asking `who` for every device of
every batch cost the ledger as much as verifying the batch's signatures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, select, update

from handoff.ledger.queries import who
from handoff.ledger.schema import devices


class Change(NamedTuple):
    """One stored checkout, reauth, forced_logoff or checkin."""

    device_id: str
    type: str
    staff_id: str | None
    session_id: str | None
    at: float
    seq: int


@dataclass(frozen=True)
class Holding:
    state: str | None
    staff_id: str | None
    session_id: str | None
    since: float | None
    latest: float | None
    """The time of the newest event folded in."""


def folded(start: Holding, changes: Iterable[Change]) -> Holding:
    """The holding after these events, in time order: `who`'s rules, applied forwards."""
    now = start
    for change in changes:
        held = now.staff_id is not None
        if change.type == "checkout":
            now = Holding("in_use", change.staff_id, change.session_id, change.at, change.at)
        elif change.type == "checkin":
            now = Holding("available", None, None, None, change.at)
        elif change.type == "reauth" and held:
            now = replace(now, state="in_use", session_id=change.session_id, latest=change.at)
        elif change.type == "forced_logoff" and held:
            now = replace(now, state="locked", session_id=None, latest=change.at)
        else:
            now = replace(now, latest=change.at)
    return now


def update_holders(conn: Connection, changes: list[Change]) -> None:
    if not changes:
        return
    by_device: dict[str, list[Change]] = {}
    for change in sorted(changes, key=lambda change: (change.at, change.seq)):
        by_device.setdefault(change.device_id, []).append(change)
    rows = {
        row.device_id: row
        for row in conn.execute(
            select(devices.c.device_id, devices.c.state, devices.c.staff_id, devices.c.session_id, devices.c.since)
            .add_columns(devices.c.latest_event)
            .where(devices.c.device_id.in_(list(by_device)))
        )
    }
    values = []
    for device_id, mine in by_device.items():
        row = rows.get(device_id)
        if row is None:
            continue
        if row.latest_event is not None and mine[0].at > row.latest_event:
            now = folded(Holding(row.state, row.staff_id, row.session_id, row.since, row.latest_event), mine)
        else:
            holder = who(conn, device_id, float("inf"))
            state = "available" if holder.staff_id is None else "in_use" if holder.logged_in else "locked"
            latest = max(mine[-1].at, row.latest_event or mine[-1].at)
            now = Holding(state, holder.staff_id, holder.session_id, holder.since, latest)
        values.append(
            {
                "key": device_id,
                "state": now.state,
                "staff_id": now.staff_id,
                "session_id": now.session_id,
                "since": now.since,
                "latest_event": now.latest,
            }
        )
    if values:
        conn.execute(
            update(devices)
            .where(devices.c.device_id == bindparam("key"))
            .values(
                state=bindparam("state"),
                staff_id=bindparam("staff_id"),
                session_id=bindparam("session_id"),
                since=bindparam("since"),
                latest_event=bindparam("latest_event"),
            ),
            values,
        )
