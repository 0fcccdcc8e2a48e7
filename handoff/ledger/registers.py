"""The hospital's two registers, imported so pages show people and equipment, not bare ids.

The staff directory is the very badge CSV the appliances import (`uid,staff_id,name,role[,revoked]`):
the ledger keeps each staff member's id, name and role, and whether every badge of theirs is
revoked; it never keeps, prints or logs a uid (it has no use for one). The asset register is a CSV
of `device_id,model,unit,asset_tag,site`. Each import replaces its table whole, in one transaction,
and any bad line refuses the file, naming the line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, delete, insert, select

from handoff.directory import csv_file_errors, text_problem
from handoff.errors import UsageError
from handoff.ledger.accounts import audit
from handoff.ledger.schema import assets, staff

MAX_TEXT: Final = 255
DIRECTORY_COLUMNS: Final = ("uid", "staff_id", "name", "role")
ASSET_COLUMNS: Final = ("device_id", "model", "unit", "asset_tag", "site")
TRUE: Final = frozenset({"true", "yes", "1"})
FALSE: Final = frozenset({"false", "no", "0", ""})


@dataclass(frozen=True)
class StaffMember:
    staff_id: str
    name: str
    role: str
    revoked: bool


@dataclass(frozen=True)
class Asset:
    device_id: str
    model: str
    unit: str
    asset_tag: str
    site: str


def read_directory(path: Path) -> list[StaffMember]:
    """One row per staff member; several badges of one person must agree on name and role."""
    found: dict[str, StaffMember] = {}
    header = (DIRECTORY_COLUMNS, (*DIRECTORY_COLUMNS, "revoked"))
    for line, cells in _rows(path, header, "uid,staff_id,name,role[,revoked]"):
        revoked_text = cells.get("revoked", "").lower()
        if revoked_text not in TRUE | FALSE:
            raise UsageError(f"{path}: line {line}: revoked must be true or false, got {cells['revoked'][:20]!r}")
        member = StaffMember(cells["staff_id"], cells["name"], cells["role"], revoked_text in TRUE)
        _check_text(path, line, {"staff_id": member.staff_id, "name": member.name, "role": member.role})
        earlier = found.get(member.staff_id)
        if earlier and (earlier.name, earlier.role) != (member.name, member.role):
            raise UsageError(f"{path}: line {line}: staff_id {member.staff_id!r} has another name or role above")
        found[member.staff_id] = (
            member
            if earlier is None
            else StaffMember(member.staff_id, member.name, member.role, earlier.revoked and member.revoked)
        )
    return list(found.values())


def read_assets(path: Path) -> list[Asset]:
    found: dict[str, Asset] = {}
    for line, cells in _rows(path, (ASSET_COLUMNS,), ",".join(ASSET_COLUMNS)):
        _check_text(path, line, {"device_id": cells["device_id"]})
        _check_text(path, line, {k: cells[k] for k in ASSET_COLUMNS[1:] if cells[k]})
        if cells["device_id"] in found:
            raise UsageError(f"{path}: line {line}: device_id {cells['device_id']!r} appears on an earlier line")
        found[cells["device_id"]] = Asset(*(cells[column] for column in ASSET_COLUMNS))
    return list(found.values())


def replace_directory(conn: Connection, at: float, actor: str, members: Sequence[StaffMember], path: Path) -> None:
    conn.execute(delete(staff))
    if members:
        conn.execute(insert(staff), [vars(member) for member in members])
    audit(conn, at, actor, "directory_imported", f"{len(members)} staff from {path.name}")


def replace_assets(conn: Connection, at: float, actor: str, found: Sequence[Asset], path: Path) -> None:
    conn.execute(delete(assets))
    if found:
        conn.execute(insert(assets), [vars(asset) for asset in found])
    audit(conn, at, actor, "assets_imported", f"{len(found)} devices from {path.name}")


def names_of(conn: Connection, staff_ids: set[str]) -> dict[str, StaffMember]:
    """The directory's entries for these staff ids (those it has)."""
    if not staff_ids:
        return {}
    rows = conn.execute(select(staff).where(staff.c.staff_id.in_(sorted(staff_ids))))
    return {row.staff_id: StaffMember(row.staff_id, row.name, row.role, bool(row.revoked)) for row in rows}


def assets_of(conn: Connection, device_ids: set[str]) -> dict[str, Asset]:
    if not device_ids:
        return {}
    rows = conn.execute(select(assets).where(assets.c.device_id.in_(sorted(device_ids))))
    return {row.device_id: Asset(row.device_id, row.model, row.unit, row.asset_tag, row.site) for row in rows}


def _rows(path: Path, headers: Sequence[Sequence[str]], wanted: str) -> Iterator[tuple[int, dict[str, str]]]:
    with csv_file_errors(path), path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = tuple(column.strip().lower() for column in next(reader, []))
        if header not in [tuple(h) for h in headers]:
            raise UsageError(f"{path}: line 1: header must be {wanted}, got {','.join(header)[:200]!r}")
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UsageError(f"{path}: line {line}: expected {len(header)} columns, got {len(row)}")
            yield line, dict(zip(header, (cell.strip() for cell in row), strict=True))


def _check_text(path: Path, line: int, cells: dict[str, str]) -> None:
    for column, value in cells.items():
        problem = text_problem(value)
        if problem is None and len(value) > MAX_TEXT:
            problem = f"is longer than {MAX_TEXT} characters"
        if problem:
            raise UsageError(f"{path}: line {line}: {column} {problem}")
