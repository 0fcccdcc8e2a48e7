"""The appliance's one SQLite database: directory, state and outbox live together; and how
every program of the package opens its own database (the agent's is `handoff.agent.database`).

One file means one transaction can cover a state change and the events it makes. WAL with
synchronous=FULL makes every commit survive power loss, which is the point of the outbox.
Schema changes are numbered migrations tracked in `PRAGMA user_version`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from handoff.data_dir import ensure_data_dir
from handoff.errors import HandoffError

DB_NAME: Final = "handoff.db"

ACKED_ABOVE_INDEX: Final = "CREATE INDEX outbox_acked ON outbox (seq) WHERE acked IS NOT NULL;"
"""The rows acknowledged out of order, above the watermark, for `depth`. A commit inserts rows
unacknowledged, so this index costs the commit nothing; the publisher's acknowledgements and the
purge keep it, off the tap's path."""


MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE badges (
        badge_ref TEXT PRIMARY KEY,
        staff_id TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX badges_staff_id ON badges (staff_id);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    CREATE TABLE appliance_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        body TEXT NOT NULL,
        last_seq INTEGER NOT NULL
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created REAL NOT NULL,
        acked REAL
    );
    CREATE INDEX outbox_acked ON outbox (acked, seq);
    CREATE TABLE broker_link (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        connected INTEGER NOT NULL,
        since REAL NOT NULL,
        last_error TEXT,
        readers TEXT NOT NULL DEFAULT '[]'
    );
    """,
    """
    CREATE TABLE seen_commands (id TEXT PRIMARY KEY, expires REAL NOT NULL);
    """,
    # Every index on the outbox cost each commit another page in the WAL, so the outbox is down
    # to its primary key: ids are UUIDv7, unique by construction and never looked up, and since
    # delivery is in seq order, a watermark below which everything is acknowledged finds the
    # unsent rows by primary key where an index on `acked` did.
    """
    CREATE TABLE outbox_v4 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created REAL NOT NULL,
        acked REAL
    );
    INSERT INTO outbox_v4 (seq, id, topic, payload, created, acked)
        SELECT seq, id, topic, payload, created, acked FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v4 RENAME TO outbox;
    CREATE TABLE delivery (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        acked_upto INTEGER NOT NULL
    );
    INSERT INTO delivery (id, acked_upto) VALUES (1, coalesce(
        (SELECT min(seq) - 1 FROM outbox WHERE acked IS NULL),
        (SELECT last_seq FROM appliance_state WHERE id = 1),
        0
    ));
    CREATE VIEW unsent AS SELECT * FROM outbox
        WHERE seq > (SELECT acked_upto FROM delivery WHERE id = 1) AND acked IS NULL;
    """,
    # The tamper-evident trail (docs/audit.md): the chain head moves in the same transaction
    # that hands out seq, and signed checkpoints wait in their own outbox, keyed by the seq
    # they cover, so a checkpoint never takes a number from the events.
    """
    ALTER TABLE appliance_state ADD COLUMN last_chain TEXT;
    ALTER TABLE appliance_state ADD COLUMN checkpoint_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE appliance_state ADD COLUMN checkpoint_at REAL NOT NULL DEFAULT 0;
    CREATE TABLE checkpoints (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        payload BLOB NOT NULL,
        created REAL NOT NULL,
        acked REAL
    );
    """,
    # 6 created the agent's journal here when the agent used this schema; it has its own
    # database now (handoff/agent/database.py). Empty, so that the numbers after it still mean
    # what they meant.
    "",
    ACKED_ABOVE_INDEX,
)


def connect(data_dir: Path) -> sqlite3.Connection:
    """Open (creating and migrating when needed) the appliance's database under `data_dir`."""
    return open_database(APPLIANCE, data_dir)


@dataclass(frozen=True)
class Schema:
    """One program's database: its file, its migrations, and how its messages name it."""

    file_name: str
    migrations: tuple[str, ...]
    data_dir_key: str
    """The config key of the directory it lives in, for every message about it."""
    after_loss: str
    """What to do once a damaged file has been moved aside and a new one made."""


APPLIANCE: Final = Schema(DB_NAME, MIGRATIONS, "appliance.data_dir", "then import the badge directory")


def open_database(schema: Schema, data_dir: Path) -> sqlite3.Connection:
    """Open (creating and migrating when needed) `schema`'s database under `data_dir`.

    Autocommit mode: writers open their own `transaction()`, so nothing is ever left
    half-committed by an implicit transaction the code did not ask for.
    """
    ensure_data_dir(data_dir, schema.data_dir_key)
    path = data_dir / schema.file_name
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn, schema.migrations)
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise CorruptDatabase(path, str(exc), schema.after_loss) from None
        raise HandoffError(f"database in {data_dir} cannot be opened: {exc}") from None
    except (OSError, sqlite3.Error) as exc:
        raise HandoffError(f"database in {data_dir} cannot be opened: {exc}") from None
    return conn


class CorruptDatabase(HandoffError):
    """The database file is damaged: say which, and what to do, rather than fail on every read.

    Nothing here repairs it: a repair may drop pages holding events not yet delivered, and only
    a person can decide whether a backup is better than what can still be read.
    """

    def __init__(self, path: Path, problem: str, after_loss: str) -> None:
        super().__init__(
            f"database {path} is corrupt ({problem}): restore it from a backup, or stop handoff, move "
            f"{path.name}* aside (keep the copy: `sqlite3 {path.name} .recover` still reads its events) "
            f"and start again, {after_loss}"
        )
        self.path = path


def check_integrity(conn: sqlite3.Connection, data_dir: Path, schema: Schema) -> None:
    """PRAGMA quick_check (every page and index, not row contents): raises `CorruptDatabase` if it fails."""
    path = data_dir / schema.file_name
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise CorruptDatabase(path, str(exc), schema.after_loss) from None
    problems = [line.strip() for row in rows for line in str(row[0]).splitlines() if line.strip() not in ("", "ok")]
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise CorruptDatabase(path, f"{problems[0]}{more}", schema.after_loss)


def connect_checked(data_dir: Path, schema: Schema = APPLIANCE) -> sqlite3.Connection:
    """`open_database`, then `check_integrity`: how every command opens the database at its start."""
    conn = open_database(schema, data_dir)
    try:
        check_integrity(conn, data_dir, schema)
    except CorruptDatabase:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.

    SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR); a second ROLLBACK
    would then hide the real error behind "no transaction is active".
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection, migrations: tuple[str, ...]) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(migrations[current:], start=current + 1):
        with transaction(conn):
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
