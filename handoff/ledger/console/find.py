"""Finding a device or a person from one box: a device id, an asset tag, a staff id or a name.

An exact device id, asset tag or staff id goes straight to its page; anything else lists what
contains it. Whether an id exists is answered from the registers and from the ledger's own
record (a device or a person seen in events), through indexes only, so it stays quick at any
history's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, func, or_, select, union

from handoff.ledger.queries import HELD
from handoff.ledger.schema import assets, devices, events, staff

SHOWN: Final = 50
STAFF_PAGE: Final = 200


@dataclass(frozen=True)
class Found:
    devices: list[tuple[str, str]]
    """(device_id, what the asset register says of it)"""
    staff: list[tuple[str, str]]
    """(staff_id, name)"""


def device_known(conn: Connection, device_id: str) -> bool:
    for table in (devices, assets):
        if conn.execute(select(table.c.device_id).where(table.c.device_id == device_id)).first():
            return True
    return conn.execute(select(events.c.device_id).where(events.c.device_id == device_id).limit(1)).first() is not None


def staff_known(conn: Connection, staff_id: str) -> bool:
    for column in (staff.c.staff_id, devices.c.staff_id, events.c.staff_id):
        if conn.execute(select(column).where(column == staff_id).limit(1)).first():
            return True
    return False


def exact(conn: Connection, text: str) -> tuple[str, str] | None:
    """("devices", id) or ("staff", id) for a device id, an asset tag or a staff id that is
    exactly `text` (an asset tag's case ignored)."""
    if device_known(conn, text):
        return "devices", text
    tagged = conn.execute(select(assets.c.device_id).where(func.lower(assets.c.asset_tag) == text.lower())).first()
    if tagged:
        return "devices", str(tagged.device_id)
    if staff_known(conn, text):
        return "staff", text
    return None


def containing(conn: Connection, text: str) -> Found:
    """Devices whose id, asset tag or model, and people whose id or name, contain `text`
    (case ignored), the first SHOWN of each."""
    device_ids = union(
        select(devices.c.device_id).where(devices.c.device_id.icontains(text, autoescape=True)),
        select(assets.c.device_id).where(
            or_(
                assets.c.device_id.icontains(text, autoescape=True),
                assets.c.asset_tag.icontains(text, autoescape=True),
                assets.c.model.icontains(text, autoescape=True),
            )
        ),
    ).subquery()
    found_devices = conn.execute(
        select(device_ids.c.device_id, assets.c.model, assets.c.asset_tag)
        .outerjoin(assets, assets.c.device_id == device_ids.c.device_id)
        .order_by(device_ids.c.device_id)
        .limit(SHOWN)
    ).all()
    people = conn.execute(
        select(staff.c.staff_id, staff.c.name)
        .where(or_(staff.c.staff_id.icontains(text, autoescape=True), staff.c.name.icontains(text, autoescape=True)))
        .order_by(staff.c.name, staff.c.staff_id)
        .limit(SHOWN)
    ).all()
    return Found(
        [(row.device_id, " · ".join(v for v in (row.asset_tag, row.model) if v)) for row in found_devices],
        [(row.staff_id, row.name) for row in people],
    )


@dataclass(frozen=True)
class StaffRow:
    staff_id: str
    name: str
    role: str
    revoked: bool
    holds: int


def staff_index(conn: Connection, page: int) -> tuple[list[StaffRow], int]:
    """One page of the staff directory by name, with how many devices each holds now; and the
    directory's size."""
    holds = (
        select(devices.c.staff_id, func.count().label("n"))
        .where(devices.c.state.in_(HELD))
        .group_by(devices.c.staff_id)
        .subquery()
    )
    rows = conn.execute(
        select(staff, func.coalesce(holds.c.n, 0).label("holds"))
        .outerjoin(holds, holds.c.staff_id == staff.c.staff_id)
        .order_by(staff.c.name, staff.c.staff_id)
        .offset(page * STAFF_PAGE)
        .limit(STAFF_PAGE)
    ).all()
    total = int(conn.execute(select(func.count()).select_from(staff)).scalar_one())
    return [StaffRow(r.staff_id, r.name, r.role, bool(r.revoked), int(r.holds)) for r in rows], total
