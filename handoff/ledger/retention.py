"""Retention: events older than `[ledger] retain_days` are pruned, without ever cutting a chain
that nothing anchors.

An appliance's events link each to the one before, so a trail that starts part-way is
verifiable only from a signed checkpoint naming the chain of the event just before it
(`handoff audit verify` starts a trail at seq N only on a checkpoint at N - 1). So, per source,
the newest checkpoint whose event is at or before the cutoff is the anchor: the events up to and
including its seq go, the checkpoint itself stays, and everything after it stays even where it
is older than the cutoff. A source with no such checkpoint keeps everything: six years of a
record that cannot be verified from part-way are better kept whole than cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, and_, delete, exists, func, select, update

from handoff.ledger import custody
from handoff.ledger.schema import checkpoints, events, receipts, sources

DAY_S: Final = 86400.0
EVERY_S: Final = 3600.0
"""How often the consumer's housekeeping prunes: the cutoff moves by a day a day."""


@dataclass(frozen=True)
class Pruned:
    events: int
    sources: int


def cutoff(now: float, retain_days: int) -> float:
    return now - retain_days * DAY_S


def anchors(conn: Connection, before: float) -> dict[str, int]:
    """Per source, the seq of the newest checkpoint at or before `before` whose event is still
    stored and carries the chain the checkpoint names (a checkpoint that names another chain
    opened chain_break and anchors nothing): what the pruned trail starts after."""
    anchored = checkpoints.join(
        events,
        and_(
            events.c.source == checkpoints.c.source,
            events.c.seq == checkpoints.c.seq,
            events.c.payload.contains(checkpoints.c.chain),
        ),
    )
    rows = conn.execute(
        select(checkpoints.c.source, func.max(checkpoints.c.seq))
        .select_from(anchored)
        .where(events.c.at <= before)
        .group_by(checkpoints.c.source)
    )
    return {source: int(seq) for source, seq in rows}


def prune(conn: Connection, now: float, retain_days: int) -> Pruned:
    """Delete what retention lets go: per anchored source, its events up to the anchor and its
    older checkpoints; then receipts older than the cutoff whose event is gone. The devices'
    custody intervals are walked again over what the pruned events touched."""
    before = cutoff(now, retain_days)
    removed = touched = 0
    reach: dict[str, float] = {}
    for source, seq in anchors(conn, before).items():
        for device_id, at in custody.pruning(conn, source, seq).items():
            reach[device_id] = max(reach.get(device_id, at), at)
        gone = conn.execute(delete(events).where(events.c.source == source, events.c.seq <= seq)).rowcount or 0
        conn.execute(delete(checkpoints).where(checkpoints.c.source == source, checkpoints.c.seq < seq))
        conn.execute(
            update(sources).where(sources.c.source == source, sources.c.first_seq <= seq).values(first_seq=seq + 1)
        )
        removed += gone
        touched += bool(gone)
    custody.pruned(conn, reach)
    conn.execute(
        delete(receipts).where(receipts.c.received < before, ~exists().where(events.c.id == receipts.c.for_id))
    )
    return Pruned(removed, touched)
