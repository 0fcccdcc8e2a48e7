"""The break-glass gesture, read from presence edges: a badge held on the reader, or a tap
just after the break-glass button.

Readers report a badge arriving and leaving, once per presence however long it rests, so a
held badge is never a second tap: this keeps when each presence began and says, once, when
one has lasted `hold_s`. Contact cards are left out: a card left in its slot is how a
smartcard reader is used, not a gesture; those carts use the button.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ARMED_S: Final = 30.0
"""How long a press of the break-glass button waits for the badge that claims it."""
CONTACT: Final = "iso7816"


@dataclass(frozen=True)
class BreakGlassButton:
    """The break-glass button on the board was pressed (put in the loop's inbox by gpiozero)."""


class Gestures:
    def __init__(self, hold_s: float) -> None:
        self._hold_s = hold_s
        self._since: dict[tuple[str, str], float] = {}
        """(reader, badge_ref) of presences that may still become a hold, with when they began."""
        self._armed_until: float | None = None

    def arm(self, now: float) -> None:
        self._armed_until = now + ARMED_S

    def presented(self, reader: str, ref: str, technology: str, now: float) -> bool:
        """True when this tap claims a button press: it asks for break-glass at once."""
        armed = self._armed_until is not None and now <= self._armed_until
        self._armed_until = None
        if not armed and technology != CONTACT:
            self._since[(reader, ref)] = now
        return armed

    def removed(self, reader: str, ref: str) -> None:
        self._since.pop((reader, ref), None)

    def held(self, now: float) -> list[tuple[str, str]]:
        """The presences that have just lasted `hold_s`; each is reported once."""
        due = [key for key, since in self._since.items() if since + self._hold_s <= now]
        for key in due:
            del self._since[key]
        return due

    def deadlines(self) -> list[float]:
        return [since + self._hold_s for since in self._since.values()]
