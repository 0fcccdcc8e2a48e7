"""Custody and session events as the core makes them, before they are numbered and sent.

`seq` and the CloudEvents envelope are added where the event is made durable, because only
the database can hand out a sequence number that is never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

EventType: TypeAlias = Literal[
    "checkout",
    "checkin",
    "forced_logoff",
    "reauth",
    "tap_rejected",
    "logoff_confirmed",
    "logoff_unconfirmed",
    "break_glass",
]
LogoffAnswer: TypeAlias = Literal["pending", "unconfirmed", "confirmed"]

CHECKIN_REASONS: Final = ("returned", "handoff", "abandoned", "revoked", "maintenance")
FORCED_LOGOFF_REASONS: Final = (
    "handoff",
    "idle_timeout",
    "max_session",
    "restart",
    "revoked",
    "remote",
    "maintenance",
    "card_removed",
    "role_changed",
)
REJECTION_REASONS: Final = (
    "unknown_badge",
    "revoked",
    "maintenance",
    "unreadable",
    "piv_signature",
    "piv_chain",
    "piv_expired",
    "piv_missing",
    "previous_session_open",
    "break_glass_unknown_badge",
    "break_glass_limit",
)
BREAK_GLASS_REASONS: Final = ("unknown_badge", "revoked", "expired", "previous_session_open")
"""What a `break_glass` event overrode: the refusal the badge would otherwise have met."""
UNCONFIRMED_REASONS: Final = ("timeout", "failed")


@dataclass(frozen=True)
class Event:
    type: EventType
    time: float
    handoff_id: str
    staff_id: str | None = None
    badge_ref: str | None = None
    session_id: str | None = None
    reason: str | None = None
    previous_staff_id: str | None = None
    reader: str | None = None
    for_id: str | None = None
    """`for` on the wire: the session-ending event a logoff_confirmed / logoff_unconfirmed is about."""
    previous_logoff: LogoffAnswer | None = None
    """On a checkout with an agent configured: how the session end before it stands."""
    break_glass: bool = False
    """On a checkout: the session it opens is an emergency one (a `break_glass` event precedes it)."""
    id: str = field(kw_only=True)
    """Named by the core, not the store: a receipt refers to the event it answers by this id."""
