"""The agent's own database: the session ends it was asked to act on, and its outbox.

It holds nothing of the appliance's (no badge directory, no custody state, no checkpoints):
the agent shares with the appliance only the outbox's design (`handoff.outbox`). An agent
installed before it had this schema kept its journal and unsent receipts in a copy of the
appliance's database (`handoff.db`): they are taken over once, and that file is renamed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from handoff import db
from handoff.errors import ConfigError
from handoff.outbox import SELF_NUMBERED_SCHEMA

MIGRATIONS: Final[tuple[str, ...]] = (
    SELF_NUMBERED_SCHEMA
    # `acting` is written before the actions run and the receipt with `done`, so after a crash
    # an event is never acted on twice, and a repeated event gets the same receipt.
    + """
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
    db.ACKED_ABOVE_INDEX,
)

AGENT: Final = db.Schema(
    "agent.db", MIGRATIONS, "agent.data_dir", "and the agent acts on the next session end it is sent"
)
LEGACY_NAME: Final = db.DB_NAME
ADOPTED_SUFFIX: Final = ".adopted"


def connect(data_dir: Path) -> sqlite3.Connection:
    """Another connection to the agent's database (each thread has its own)."""
    return db.open_database(AGENT, data_dir)


def connect_checked(data_dir: Path) -> sqlite3.Connection:
    """The first connection at start: integrity checked, and an older agent's database taken over."""
    conn = db.connect_checked(data_dir, AGENT)
    legacy = data_dir / LEGACY_NAME
    if legacy.exists():
        _adopt(conn, legacy)
    return conn


def _adopt(conn: sqlite3.Connection, legacy: Path) -> None:
    """Copy the journal and the unsent messages of an agent that used the appliance's schema,
    then rename its file. Idempotent, so a crash before the rename only repeats the copy.

    An appliance's own database (custody state, badges) in the same directory is refused, not
    taken: renaming it would cost that appliance its events.
    """
    conn.execute("ATTACH DATABASE ? AS legacy", (str(legacy),))
    try:
        appliance = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM legacy.appliance_state WHERE body != 'null')"
            " OR EXISTS (SELECT 1 FROM legacy.badges)"
        ).fetchone()[0]
        if appliance:
            raise ConfigError(
                f"agent.data_dir {legacy.parent} holds an appliance's database ({legacy.name}): "
                "give the agent a directory of its own",
                key="agent.data_dir",
            )
        with db.transaction(conn):
            conn.execute(
                "INSERT OR IGNORE INTO agent_events SELECT id, body, received, state, receipt_id, receipt, resend"
                " FROM legacy.agent_events"
            )
            conn.execute(
                "INSERT INTO outbox (id, topic, payload, created) SELECT id, topic, payload, created"
                " FROM legacy.outbox WHERE acked IS NULL AND id NOT IN (SELECT id FROM main.outbox) ORDER BY seq"
            )
    finally:
        conn.execute("DETACH DATABASE legacy")
    for suffix in ("", "-wal", "-shm"):
        old = legacy.with_name(legacy.name + suffix)
        if old.exists():
            old.rename(old.with_name(old.name + ADOPTED_SUFFIX))
