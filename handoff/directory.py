"""The badge directory: who a badge belongs to, and whether it is still honoured.

Badges are keyed by `badge_ref`, never by UID. A directory is replaced whole (CSV import or
a directory command) so a half-applied update can never leave a revoked badge honoured.
`version` only grows, so an older directory can be recognised and refused.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from handoff.badge_ref import BadgeSecret
from handoff.db import transaction
from handoff.errors import UsageError
from handoff.readers.pacs import LAYOUTS, MAX_TEXT, parse_credential, text_badge_bytes
from handoff.staff_id import staff_id_problem

UID_LENGTHS: Final = (4, 7, 10)
IDENTIFIER_LENGTHS: Final = {
    4: "14443 UID",
    7: "14443 UID",
    8: "FeliCa IDm",
    10: "14443 UID",
    16: "PIV card UUID",
    25: "PIV FASC-N",
}
"""What a reader can report as a badge identifier, and so what a directory row may hold."""
REQUIRED_COLUMNS: Final = ("uid", "staff_id", "name", "role")
_TRUE: Final = {"1", "true", "yes", "y", "revoked"}
_FALSE: Final = {"", "0", "false", "no", "n"}


@dataclass(frozen=True)
class Badge:
    badge_ref: str
    staff_id: str
    name: str
    role: str
    revoked: bool = False


class Directory:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def lookup(self, badge_ref: str) -> Badge | None:
        row = self._conn.execute(
            "SELECT badge_ref, staff_id, name, role, revoked FROM badges WHERE badge_ref = ?", (badge_ref,)
        ).fetchone()
        return _badge(row) if row else None

    def badges(self) -> list[Badge]:
        rows = self._conn.execute(
            "SELECT badge_ref, staff_id, name, role, revoked FROM badges ORDER BY staff_id, badge_ref"
        )
        return [_badge(row) for row in rows]

    def is_honoured(self, staff_id: str) -> bool:
        """True while the staff member holds at least one badge that is not revoked."""
        row = self._conn.execute(
            "SELECT 1 FROM badges WHERE staff_id = ? AND revoked = 0 LIMIT 1", (staff_id,)
        ).fetchone()
        return row is not None

    def version(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'directory_version'").fetchone()
        return int(row[0]) if row else 0

    def replace(
        self,
        badges: Iterable[Badge],
        version: int | None = None,
        *,
        within: Callable[[sqlite3.Connection], None] | None = None,
    ) -> int:
        """Swap in a whole new directory atomically; returns the new version.

        Without an explicit version the current one is bumped by one (a local CSV import).
        `within` writes in the same transaction (a directory command's id), so both land or neither.
        """
        with transaction(self._conn):
            current = self.version()
            new_version = current + 1 if version is None else version
            if new_version <= current:
                raise UsageError(f"directory version {new_version} is not newer than the one held ({current})")
            self._conn.execute("DELETE FROM badges")
            self._conn.executemany(
                "INSERT INTO badges (badge_ref, staff_id, name, role, revoked) VALUES (?, ?, ?, ?, ?)",
                [(b.badge_ref, b.staff_id, b.name, b.role, int(b.revoked)) for b in badges],
            )
            self._set_version(new_version)
            if within is not None:
                within(self._conn)
        return new_version

    def revoke(self, staff_id: str) -> int:
        """Revoke every badge of `staff_id`; returns how many were revoked."""
        with transaction(self._conn):
            found = self._conn.execute("SELECT count(*) FROM badges WHERE staff_id = ?", (staff_id,)).fetchone()[0]
            if not found:
                raise UsageError(f"no badge in the directory belongs to staff id {staff_id!r}")
            self._conn.execute("UPDATE badges SET revoked = 1 WHERE staff_id = ?", (staff_id,))
            self._set_version(self.version() + 1)
        return int(found)

    def _set_version(self, version: int) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('directory_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(version),),
        )


def parse_uid(text: str) -> bytes:
    """A 14443-A badge UID as hex (colons and spaces allowed): 4, 7 or 10 bytes as ISO/IEC 14443-3 allows."""
    uid = _hex(text)
    if len(uid) not in UID_LENGTHS:
        raise ValueError(f"uid is {len(uid)} bytes; badge UIDs are 4, 7 or 10 bytes")
    return uid


def parse_identifier(text: str) -> bytes:
    """Any identifier a reader reports (hw/readers.md): a PACS credential `<format>:<facility>:<number>`,
    what a keyboard-wedge reader types as `text:<characters>`, or hex: a 14443 UID, a FeliCa
    IDm, a PIV card UUID or FASC-N."""
    name = text.partition(":")[0].lower()
    if name in LAYOUTS:
        return parse_credential(text.lower()).badge_bytes
    if name == "text":
        characters = text[len("text:") :]
        if not characters or len(characters) > MAX_TEXT or not characters.isprintable():
            raise ValueError(f"uid text: takes 1 to {MAX_TEXT} printable characters")
        return text_badge_bytes(characters)
    identifier = _hex(text)
    if len(identifier) not in IDENTIFIER_LENGTHS:
        kinds = ", ".join(f"{n} ({kind})" for n, kind in IDENTIFIER_LENGTHS.items())
        raise ValueError(f"uid is {len(identifier)} bytes; badge identifiers are {kinds}")
    return identifier


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text.replace(":", "").replace(" ", "").replace("-", ""))
    except ValueError:
        raise ValueError("uid is not hexadecimal") from None


def text_problem(text: str) -> str | None:
    """Why a staff id, name or role is refused, or None.

    They are printed by `badges list`, logged and published: an ANSI escape, a NUL, a newline or
    a bidi override in one would rewrite a terminal or a log line, so only printable text passes.
    """
    if not text:
        return "is empty"
    bad = next((ch for ch in text if not ch.isprintable()), None)
    if bad is not None:
        return f"holds a control or invisible character (U+{ord(bad):04X}); only printable text is allowed"
    return None


def read_csv(path: Path, secret: BadgeSecret) -> list[Badge]:
    """Parse a directory CSV completely; any bad row refuses the whole file, naming its line."""
    with csv_file_errors(path), path.open(newline="", encoding="utf-8-sig") as handle:
        return _parse_rows(path, csv.reader(handle), secret)


@contextmanager
def csv_file_errors(path: Path) -> Iterator[None]:
    """A CSV file that cannot be read as one becomes one line naming the file and why, for the
    appliance's directory and the ledger's registers alike."""
    try:
        yield
    except FileNotFoundError:
        raise UsageError(f"{path}: file does not exist") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise UsageError(f"{path}: not a valid CSV file: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror}") from None


def _parse_rows(path: Path, rows: Iterable[list[str]], secret: BadgeSecret) -> list[Badge]:
    iterator = iter(rows)
    header = [column.strip().lower() for column in next(iterator, [])]
    allowed = (list(REQUIRED_COLUMNS), [*REQUIRED_COLUMNS, "revoked"])
    if header not in allowed:
        raise UsageError(f"{path}: line 1: header must be uid,staff_id,name,role (optional revoked), got {header}")
    seen: set[str] = set()
    badges = []
    for line, row in enumerate(iterator, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UsageError(f"{path}: line {line}: expected {len(header)} columns, got {len(row)}")
        cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
        try:
            uid = parse_identifier(cells["uid"])
        except ValueError as exc:
            raise UsageError(f"{path}: line {line}: {exc}") from None
        for column in ("staff_id", "name", "role"):
            problem = staff_id_problem(cells[column]) if column == "staff_id" else text_problem(cells[column])
            if problem:
                raise UsageError(f"{path}: line {line}: {column} {problem}")
        revoked_text = cells.get("revoked", "").lower()
        if revoked_text not in _TRUE | _FALSE:
            raise UsageError(f"{path}: line {line}: revoked must be true or false, got {cells['revoked']!r}")
        ref = secret.ref(uid)
        if ref in seen:
            raise UsageError(f"{path}: line {line}: this uid already appears on an earlier line")
        seen.add(ref)
        badges.append(Badge(ref, cells["staff_id"], cells["name"], cells["role"], revoked_text in _TRUE))
    return badges


def _badge(row: tuple[str, str, str, str, int]) -> Badge:
    return Badge(row[0], row[1], row[2], row[3], bool(row[4]))
