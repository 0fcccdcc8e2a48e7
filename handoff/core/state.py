"""What the appliance knows about its device: custody and session, kept apart.

Custody (who answers for the device) outlives sessions (who is logged in): a locked device
still has a holder. `present` remembers badges resting on a reader, so a badge left on the
reader counts once however long it stays.
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


@dataclass(frozen=True)
class State:
    mode: Mode
    since: float
    custody: Custody | None = None
    present: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    """(reader, badge_ref) pairs of badges currently in a reader's field."""

    @property
    def live_session_id(self) -> str | None:
        return self.custody.session_id if self.mode == "in_use" and self.custody else None


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
    return replace(state, since=state.since + seconds, custody=custody)
