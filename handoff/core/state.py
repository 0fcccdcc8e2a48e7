"""What the appliance knows about its device: custody and session, kept apart.

Custody (who answers for the device) outlives sessions (who is logged in): a locked device
still has a holder. `present` remembers badges resting on a reader, so a badge left on the
reader counts once however long it stays. With an agent, `ends` remembers the session ends
whose logoff the attached device has not yet confirmed: they survive a restart with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final, Literal, TypeAlias, get_args

Mode: TypeAlias = Literal["available", "in_use", "locked", "maintenance"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)


@dataclass(frozen=True)
class Custody:
    staff_id: str
    badge_ref: str
    since: float
    session_id: str
    """The live session when in_use; the one that ended when locked (for the audit trail)."""
    session_start: float
    last_activity: float
    last_accepted_tap: float
    role: str | None = None
    """The directory's role when the session was opened (None for a badge the directory does
    not know): a directory update that changes it ends the session."""
    break_glass: bool = False
    """The session was opened by break-glass: a revocation does not end it, and it stays
    `break_glass` until it ends (a reauth opens an ordinary one)."""


@dataclass(frozen=True)
class SessionEnd:
    """A session end waiting for its receipt (`pending`) or past waiting (`unconfirmed`): a
    valid receipt that comes late still confirms it."""

    event_id: str
    staff_id: str
    badge_ref: str
    session_id: str
    handoff_id: str
    ended_at: float
    answer: Literal["pending", "unconfirmed"] = "pending"


@dataclass(frozen=True)
class Waiting:
    """With `require_confirmed`: a badge that asked for the device while the session end before
    it waits for its receipt; the checkout happens when the receipt comes, without another tap."""

    staff_id: str
    badge_ref: str
    reader: str
    for_id: str
    role: str | None = None


@dataclass(frozen=True)
class BreakGlassUse:
    """One use of break-glass, kept for the per-staff limit over the last 30 days."""

    staff_id: str
    at: float


@dataclass(frozen=True)
class State:
    mode: Mode
    since: float
    custody: Custody | None = None
    present: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    """(reader, badge_ref) pairs of badges currently in a reader's field."""
    ends: tuple[SessionEnd, ...] = ()
    """Unconfirmed session ends, oldest first; only the latest few are kept."""
    last_end: str | None = None
    """The id of the latest session end, whichever way it was answered."""
    confirmed_upto: float | None = None
    """When the latest session end that was confirmed ended: older unconfirmed ones no longer
    keep the light amber."""
    waiting: Waiting | None = None
    break_glass_uses: tuple[BreakGlassUse, ...] = ()
    """Uses of the last 30 days, oldest first: durable with the rest, so a restart resets nothing."""
    warned_lock_at: float | None = None
    """The idle lock the holder has been warned of, while it still stands: the retained state
    shows it, so the agent can put the warning on the screen."""

    @property
    def live_session_id(self) -> str | None:
        return self.custody.session_id if self.mode == "in_use" and self.custody else None

    @property
    def break_glass_session(self) -> bool:
        return self.mode == "in_use" and self.custody is not None and self.custody.break_glass

    @property
    def last_logoff(self) -> Literal["pending", "unconfirmed", "confirmed"] | None:
        """How the latest session end stands, for the next checkout's `previous_logoff`."""
        if self.last_end is None:
            return None
        for end in self.ends:
            if end.event_id == self.last_end:
                return end.answer
        return "confirmed"

    @property
    def unconfirmed_warning(self) -> bool:
        """Amber until an unconfirmed logoff, or a later session end, is confirmed."""
        since = self.confirmed_upto
        return any(end.answer == "unconfirmed" and (since is None or end.ended_at > since) for end in self.ends)


def initial_state(now: float) -> State:
    return State(mode="available", since=now)


def shifted(state: State, seconds: float) -> State:
    """The same state with every instant moved by `seconds`: from the runtime's timeline to the
    wall clock when it is saved, and back when it is loaded."""
    custody = state.custody
    if custody is not None:
        custody = replace(
            custody,
            since=custody.since + seconds,
            session_start=custody.session_start + seconds,
            last_activity=custody.last_activity + seconds,
            last_accepted_tap=custody.last_accepted_tap + seconds,
        )
    ends = tuple(replace(end, ended_at=end.ended_at + seconds) for end in state.ends)
    confirmed_upto = None if state.confirmed_upto is None else state.confirmed_upto + seconds
    uses = tuple(replace(use, at=use.at + seconds) for use in state.break_glass_uses)
    warned = None if state.warned_lock_at is None else state.warned_lock_at + seconds
    return replace(
        state,
        since=state.since + seconds,
        custody=custody,
        ends=ends,
        confirmed_upto=confirmed_upto,
        break_glass_uses=uses,
        warned_lock_at=warned,
    )
