"""The agent's memory of the session ends it was asked to act on, beside its outbox.

The broker's copy of an event is acknowledged only once `note` has committed it (the
publisher calls it before paho sends the PUBACK), `acting` is committed before the actions
run, and the receipt commits together with its place in the outbox. So a crash at any line
loses no event, runs no action twice, and a repeated event gets the receipt it had.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from handoff import compact_json
from handoff.db import transaction
from handoff.outbox import append

RECEIPTS_TOPIC: Final = "receipts"


@dataclass(frozen=True)
class Due:
    """Work waiting: a new event, one whose actions were cut short by a crash, or a receipt to
    send again because the event came again."""

    event_id: str
    event: dict[str, Any]
    why: Literal["new", "interrupted", "resend"]


class Journal:
    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._clock = clock

    def note(self, event: dict[str, Any]) -> None:
        """Remember an event to act on; one already answered is marked to be answered again."""
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO agent_events (id, body, received, state) VALUES (?, ?, ?, 'new')"
                " ON CONFLICT (id) DO UPDATE SET resend = 1 WHERE state = 'done'",
                (event["id"], compact_json.dumps(event), self._clock()),
            )

    def due(self) -> Due | None:
        row = self._conn.execute(
            "SELECT id, body, state FROM agent_events WHERE state != 'done' OR resend = 1 ORDER BY received LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        event_id, body, state = row
        why: Literal["new", "interrupted", "resend"] = (
            "resend" if state == "done" else "interrupted" if state == "acting" else "new"
        )
        return Due(event_id, json.loads(body), why)

    def start(self, event_id: str) -> None:
        with transaction(self._conn):
            self._conn.execute("UPDATE agent_events SET state = 'acting' WHERE id = ?", (event_id,))

    def finish(self, event_id: str, receipt: dict[str, Any]) -> None:
        payload = compact_json.dumps(receipt).encode()
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE agent_events SET state = 'done', receipt_id = ?, receipt = ?, resend = 0 WHERE id = ?",
                (receipt["id"], payload, event_id),
            )
            append(self._conn, RECEIPTS_TOPIC, receipt["id"], payload, self._clock())

    def resend(self, event_id: str) -> None:
        with transaction(self._conn):
            receipt_id, payload = self._conn.execute(
                "SELECT receipt_id, receipt FROM agent_events WHERE id = ?", (event_id,)
            ).fetchone()
            self._conn.execute("UPDATE agent_events SET resend = 0 WHERE id = ?", (event_id,))
            append(self._conn, RECEIPTS_TOPIC, receipt_id, payload, self._clock())

    def queue(self, topic: str, message_id: str, payload: bytes) -> None:
        with transaction(self._conn):
            append(self._conn, topic, message_id, payload, self._clock())
