"""The appliance's one SQLite database: directory, state and outbox live together.

One file means one transaction can cover a state change and the events it makes. WAL with
synchronous=FULL makes every commit survive power loss, which is the point of the outbox.
Schema changes are numbered migrations tracked in `PRAGMA user_version`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from handoff.data_dir import ensure_data_dir
from handoff.errors import HandoffError

DB_NAME: Final = "handoff.db"

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
    # The agent (docs/agent.md) keeps, in its own database, every session end it was asked to
    # act on: `acting` is written before the actions run and the receipt with `done`, so after a
    # crash an event is never acted on twice, and a repeated event gets the same receipt.
    """
    CREATE TABLE agent_events (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        received REAL NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('new', 'acting', 'done')),
        receipt_id TEXT,
        receipt BLOB,
        resend INTEGER NOT NULL DEFAULT 0
    );
    """,
)


def connect(data_dir: Path) -> sqlite3.Connection:
    """Open (creating and migrating when needed) the database under `data_dir`.

    Autocommit mode: writers open their own `transaction()`, so nothing is ever left
    half-committed by an implicit transaction the code did not ask for.
    """
    ensure_data_dir(data_dir)
    try:
        conn = sqlite3.connect(data_dir / DB_NAME, isolation_level=None, timeout=10.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn)
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise CorruptDatabase(data_dir / DB_NAME, str(exc)) from None
        raise HandoffError(f"database in {data_dir} cannot be opened: {exc}") from None
    except (OSError, sqlite3.Error) as exc:
        raise HandoffError(f"database in {data_dir} cannot be opened: {exc}") from None
    return conn


class CorruptDatabase(HandoffError):
    """The database file is damaged: say which, and what to do, rather than fail on every read.

    Nothing here repairs it: a repair may drop pages holding events not yet delivered, and only
    a person can decide whether a backup is better than what can still be read.
    """

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"database {path} is corrupt ({problem}): restore it from a backup, or stop handoff, move "
            f"{path.name}* aside (keep the copy: `sqlite3 {path.name} .recover` still reads its events) "
            "and start again, then import the badge directory"
        )
        self.path = path


def check_integrity(conn: sqlite3.Connection, data_dir: Path) -> None:
    """PRAGMA quick_check (every page and index, not row contents): raises `CorruptDatabase` if it fails."""
    path = data_dir / DB_NAME
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise CorruptDatabase(path, str(exc)) from None
    problems = [line.strip() for row in rows for line in str(row[0]).splitlines() if line.strip() not in ("", "ok")]
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise CorruptDatabase(path, f"{problems[0]}{more}")


def connect_checked(data_dir: Path) -> sqlite3.Connection:
    """`connect`, then `check_integrity`: how every command opens the database at its start."""
    conn = connect(data_dir)
    try:
        check_integrity(conn, data_dir)
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


def _migrate(conn: sqlite3.Connection) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
        with transaction(conn):
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
