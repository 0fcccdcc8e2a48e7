"""Command ids remembered against replay, written in the same transaction as what the command did.

So an id is remembered exactly when its effects are: a commit that fails leaves neither, and the
very same command can be sent again; one that lands leaves both, and a replay is refused.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class SeenCommand:
    id: str
    expires: float
    """Wall-clock time after which a replay is refused as expired anyway, so the id may go."""


def was_seen(conn: sqlite3.Connection, command_id: str) -> bool:
    return conn.execute("SELECT 1 FROM seen_commands WHERE id = ?", (command_id,)).fetchone() is not None


def remember(conn: sqlite3.Connection, seen: SeenCommand, now: float) -> None:
    """Call inside the caller's transaction; a second copy of one id fails the whole commit."""
    conn.execute("DELETE FROM seen_commands WHERE expires < ?", (now,))
    conn.execute("INSERT INTO seen_commands (id, expires) VALUES (?, ?)", (seen.id, seen.expires))
