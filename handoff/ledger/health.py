"""Each running ledger's own account of itself, in the database, for `handoff ledger status`.

`status` runs in another process (often on another host), so the consumer writes what only it
knows (connected to the broker or not, how far behind it is, how fast it commits) into a row
of its own, at most every EVERY_S; a row not updated for a while says the ledger is not running
or cannot reach the database.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

from sqlalchemy import Connection, distinct, func, insert, select, update

from handoff.ledger.schema import counters, ledger_health, untrusted

EVERY_S: Final = 5.0


@dataclass(frozen=True)
class Health:
    client_id: str
    updated: float
    broker_connected: bool
    lag_s: float | None
    batch_rate: float
    messages_per_s: float


def record(conn: Connection, health: Health) -> None:
    values = {
        "updated": health.updated,
        "broker_connected": health.broker_connected,
        "lag_s": health.lag_s,
        "batch_rate": health.batch_rate,
        "messages_per_s": health.messages_per_s,
    }
    mine = ledger_health.c.client_id == health.client_id
    if not conn.execute(update(ledger_health).where(mine).values(**values)).rowcount:
        conn.execute(insert(ledger_health).values(client_id=health.client_id, **values))


def ledgers(conn: Connection) -> list[Health]:
    columns = [ledger_health.c[field.name] for field in fields(Health)]
    rows = conn.execute(select(*columns).order_by(ledger_health.c.client_id))
    return [Health(*row) for row in rows]


def refused(conn: Connection) -> dict[str, int]:
    return {name: int(value) for name, value in conn.execute(select(counters.c.name, counters.c.value))}


def untrusted_sources(conn: Connection) -> int:
    """How many sources have messages kept apart as untrusted (trust.py): each is someone
    publishing in a cart's name, or a cart waiting to be enrolled."""
    return int(conn.execute(select(func.count(distinct(untrusted.c.source)))).scalar_one())
