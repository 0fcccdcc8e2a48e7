"""Everything that can happen to the appliance, as plain values handed to the core.

The shell resolves I/O before building an input: a `Tap` already carries the directory's
answer, so the core decides without looking anything up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True)
class Tap:
    """A badge arrived in a reader's field.

    `rejection` is set when the reader could not trust the card at all (unreadable, a failed
    PIV check); otherwise `staff_id` is the directory's answer, None for an unknown badge.
    """

    reader: str
    badge_ref: str | None
    staff_id: str | None
    revoked: bool = False
    rejection: str | None = None
    role: str | None = None
    """The directory's role for the badge: a session remembers the role it was opened under."""


@dataclass(frozen=True)
class BreakGlass:
    """The badge asks for emergency access: it stayed on the reader `break_glass_hold_s`, or
    it was tapped just after the break-glass button was pressed.

    It always follows the `Tap` of the same presence, which was judged as any tap: break-glass
    only changes what that tap could not get.
    """

    reader: str
    badge_ref: str
    staff_id: str | None
    revoked: bool = False
    role: str | None = None
    expired: bool = False
    """A genuine PIV card out of its validity dates (its tap was refused as `piv_expired`)."""


@dataclass(frozen=True)
class Lift:
    """The badge left the field, so its next arrival counts as a new tap.

    `card_pulled`: it was a contact card pulled from a reader set to lock on card removal, so
    the holder's live session ends.
    """

    reader: str
    badge_ref: str
    card_pulled: bool = False


@dataclass(frozen=True)
class Tick:
    """Time has passed: lets due timers fire when nothing else happens."""


@dataclass(frozen=True)
class Activity:
    """The attached device reports its user is active (`cmd/activity`)."""


@dataclass(frozen=True)
class Restart:
    """The appliance has just started; whatever session was live did not survive it."""


@dataclass(frozen=True)
class Revoked:
    """The directory no longer honours any badge of this staff member."""

    staff_id: str


@dataclass(frozen=True)
class HolderRole:
    """The directory now gives `staff_id` this role (it changed, or may have): a session opened
    under another role ends, because what the holder may do on the device has changed."""

    staff_id: str
    role: str


@dataclass(frozen=True)
class WarnIdle:
    """The moment to warn the holder of the idle lock has come (the shell keeps the timer)."""


@dataclass(frozen=True)
class ForceLogoff:
    """An operator ends the live session remotely (`cmd/force_logoff`)."""


@dataclass(frozen=True)
class SetMaintenance:
    """Biomed takes the device out of service, or puts it back (`cmd/maintenance`)."""

    on: bool


@dataclass(frozen=True)
class Receipt:
    """The attached device's agent answers for a session end (docs/agent.md).

    The shell has already checked its signature, its key and its device; the core judges
    only whether `for_id` names a session end still waiting for an answer.
    """

    for_id: str
    done: bool


Input: TypeAlias = (
    Tap
    | BreakGlass
    | Lift
    | Tick
    | Activity
    | Restart
    | Revoked
    | HolderRole
    | WarnIdle
    | ForceLogoff
    | SetMaintenance
    | Receipt
)
