"""The vocabulary of lights and beeps, as data.

Clinicians learn it from commercial badge-tap products: one beep for a good read, then
2 / 3 beeps for "badge not found" / "device error". Every cue is short (well under a second
and a half) so the next tap is never kept waiting, and "accepted" is only ever shown after
the event is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final


class Cue(Enum):
    ACCEPTED = "accepted"
    RETURNED = "returned"
    HANDOFF = "handoff"
    REJECTED = "rejected"
    LOCKED = "locked"
    IDLE_WARNING = "idle_warning"
    IGNORED = "ignored"
    DEVICE_ERROR = "device_error"
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True)
class Frame:
    """Outputs held for `seconds`; an output not named is off."""

    seconds: float
    on: frozenset[str]


def _frames(*steps: tuple[float, str]) -> tuple[Frame, ...]:
    return tuple(Frame(seconds, frozenset(filter(None, names.split()))) for seconds, names in steps)


def _beeps(count: int, led: str) -> tuple[Frame, ...]:
    steps: list[tuple[float, str]] = []
    for _ in range(count):
        steps += [(0.08, f"{led} buzzer"), (0.08, led)]
    return _frames(*steps, (0.3, led))


PATTERNS: Final[dict[Cue, tuple[Frame, ...]]] = {
    Cue.ACCEPTED: _frames((0.12, "green buzzer"), (0.5, "green")),
    Cue.RETURNED: _frames((0.12, "green buzzer"), (0.15, ""), (0.15, "green"), (0.15, ""), (0.15, "green")),
    Cue.HANDOFF: _frames((0.12, "green amber buzzer"), (0.5, "green amber")),
    Cue.REJECTED: _beeps(2, "red"),
    Cue.DEVICE_ERROR: _beeps(3, "red"),
    Cue.LOCKED: _frames((0.4, "amber buzzer"), (0.4, "amber")),
    Cue.IDLE_WARNING: _frames(
        (0.05, "amber buzzer"), (0.2, "amber"), (0.2, ""), (0.05, "amber buzzer"), (0.2, "amber")
    ),
    Cue.IGNORED: _frames((0.1, "green")),
    Cue.UNCONFIRMED: _frames(
        (0.3, "amber red buzzer"), (0.15, "amber"), (0.3, "amber red buzzer"), (0.15, "amber"), (0.3, "amber")
    ),
}
"""IGNORED (a re-tap inside the guard) blinks without a sound: the tap was seen and nothing
changed; a beep would read as "accepted" and invite a third tap. UNCONFIRMED (no receipt that
the previous user was logged off) is two long low beeps with red and amber, unlike any answer
to a tap, because nobody just tapped: it calls someone to look at the screen."""

AMBIENT: Final[dict[str, frozenset[str]]] = {
    "available": frozenset(),
    "in_use": frozenset({"green"}),
    "locked": frozenset({"amber"}),
    "maintenance": frozenset({"red", "amber"}),
}
"""What stays lit between cues. When offline, amber blinks slowly on top: events are being
kept in the outbox, which biomed should know at a glance."""

FAULT: Final = frozenset({"red"})
"""Lit steadily on top of the state's lights while the appliance cannot do its job unattended
(the broker refuses an event and every later one waits): biomed should run `handoff status`."""

UNCONFIRMED: Final = frozenset({"amber"})
"""Lit steadily while a logoff is unconfirmed (docs/agent.md): the previous user may still be
logged in on the attached device, which the next clinician and biomed should see."""

OFFLINE_BLINK_S: Final = 1.0
