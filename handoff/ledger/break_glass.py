"""The ledger's review of each break-glass use: the exception a trusted `break_glass` event
opens, the count of that person's uses over 30 days (across devices: the appliance counts per
device only), what happened on the device during the emergency session, and the admin's review
that alone closes the exception.

A review is a person's judgement, so only an admin's review with a note closes it: the ledger
never closes it by itself, and acknowledging exceptions in bulk only marks it taken in hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, func, select, update

from handoff.errors import UsageError
from handoff.ledger.accounts import audit
from handoff.ledger.schema import events, exceptions, receipts

KIND: Final = "break_glass_review"
WINDOW_S: Final = 30 * 86400.0
"""`break_glass_per_30d` counts the uses of this many seconds back, as the appliance does."""
MAX_STORY: Final = 500
"""At most this many events of one emergency session on its review page."""
MAX_NOTE: Final = 255


def key(event_id: str) -> str:
    """One review per use, named by the `break_glass` event's id."""
    return f"break_glass:{event_id}"


def uses_within(conn: Connection, staff_id: str | None, at: float) -> int:
    """The staff member's break-glass uses in the 30 days up to `at`, that one included, on any device."""
    if staff_id is None:
        return 0
    return int(
        conn.execute(
            select(func.count()).where(
                events.c.type == "break_glass",
                events.c.staff_id == staff_id,
                events.c.at > at - WINDOW_S,
                events.c.at <= at,
            )
        ).scalar_one()
    )


def detail(staff_id: str | None, reason: str | None, uses: int, limit: int) -> str:
    """The exception's one line: who, what was overridden, and the use against the limit."""
    over = f"; OVER THE LIMIT of {limit}" if uses > limit else ""
    return f"{staff_id} broke the glass over {reason}: use {uses} in 30 days (limit {limit}){over}"


@dataclass(frozen=True)
class Step:
    """One thing that happened on the device during the emergency session."""

    at: float
    kind: str
    staff_id: str | None
    reason: str | None
    """For a receipt: the agent's result (`done`, `failed`)."""


@dataclass(frozen=True)
class Review:
    """Everything the review page shows."""

    flag: Any
    use: Any
    uses: int
    limit: int
    story: list[Step]
    ended: bool

    @property
    def over_limit(self) -> bool:
        return self.uses > self.limit


def review_of(conn: Connection, flag_id: int, limit: int) -> Review | None:
    """The review of one `break_glass_review` exception; None when there is no such exception."""
    flag = conn.execute(select(exceptions).where(exceptions.c.id == flag_id, exceptions.c.type == KIND)).first()
    if flag is None:
        return None
    event_id = flag.key.removeprefix("break_glass:")
    use = conn.execute(select(events).where(events.c.id == event_id)).first()
    if use is None:
        return Review(flag, None, 0, limit, [], ended=False)
    story, ended = _session(conn, use)
    return Review(flag, use, uses_within(conn, use.staff_id, use.at), limit, story, ended)


def _session(conn: Connection, use: Any) -> tuple[list[Step], bool]:
    """The device's events from the use until the session it opened ended (its `forced_logoff`
    or `checkin`), in seq order, with the agent's receipts for them; whether it has ended."""
    rows = list(
        conn.execute(
            select(events.c.id, events.c.at, events.c.type, events.c.staff_id, events.c.reason, events.c.session_id)
            .where(events.c.source == use.source, events.c.seq >= use.seq)
            .order_by(events.c.seq)
            .limit(MAX_STORY)
        )
    )
    kept, ended = [], False
    for row in rows:
        kept.append(row)
        if row.type in ("forced_logoff", "checkin") and row.session_id == use.session_id:
            ended = True
            break
    ids = [row.id for row in kept]
    answers = conn.execute(
        select(receipts.c.result, receipts.c.received)
        .where(receipts.c.for_id.in_(ids), receipts.c.device_id == use.device_id)
        .order_by(receipts.c.received)
    )
    story = [Step(row.at, row.type, row.staff_id, row.reason) for row in kept]
    story += [Step(received, "logoff_receipt", None, result) for result, received in answers]
    return sorted(story, key=lambda step: step.at), ended


def close_with_review(conn: Connection, flag_id: int, admin: str, note: str, now: float) -> None:
    """Close an open review with the admin's note, in the audit trail (the reviewer and note
    take the place of any earlier acknowledgement's, which stays in the audit trail). Raises
    UsageError without a note, or when the review is not open."""
    note = note.strip()[:MAX_NOTE]
    if not note:
        raise UsageError("note: a review needs a note saying what was checked")
    flag = conn.execute(
        select(exceptions.c.key).where(
            exceptions.c.id == flag_id, exceptions.c.type == KIND, exceptions.c.closed.is_(None)
        )
    ).first()
    if flag is None:
        raise UsageError(f"no open break-glass review #{flag_id}")
    conn.execute(
        update(exceptions)
        .where(exceptions.c.id == flag_id)
        .values(closed=now, acked_by=admin, acked_at=now, ack_note=note)
    )
    audit(conn, now, admin, "break_glass_reviewed", f"#{flag_id} {flag.key}; note: {note}")
