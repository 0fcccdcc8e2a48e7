"""Keeping a message the database refused, raw, so that it stops nothing and is not lost from view.

The message passed every check the ledger knows (limits.py) and the database still refused it:
it is kept as bytes, counted under `database_refused`, and acknowledged, so the broker stops
delivering it. Only the newest KEEP are kept, so a flood of them cannot fill the disk.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy import Connection, delete, func, insert, select

from handoff.ledger.ingest import MAX_MESSAGE_BYTES, Message, count
from handoff.ledger.schema import set_aside

log = logging.getLogger("handoff.ledger")

KEEP: Final = 10_000
REASON: Final = "database_refused"
MAX_TOPIC_BYTES: Final = 1024


def put_aside(conn: Connection, message: Message, now: float, why: str) -> None:
    conn.execute(
        insert(set_aside).values(
            received=now,
            reason=REASON,
            topic=message.topic.encode(errors="replace")[:MAX_TOPIC_BYTES],
            payload=message.payload[:MAX_MESSAGE_BYTES],
        )
    )
    count(conn, REASON, 1)
    newest = conn.execute(select(func.max(set_aside.c.id))).scalar_one()
    conn.execute(delete(set_aside).where(set_aside.c.id <= newest - KEEP))
    log.warning("set aside a message on %r that the database refused: %s", message.topic[:300], why)
