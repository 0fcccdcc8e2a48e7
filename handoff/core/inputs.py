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


Input: TypeAlias = Tap | Lift | Tick | Activity | Restart | Revoked | ForceLogoff | SetMaintenance | Receipt
