"""What each kind of exception is called on a page, and what it means, in one line each."""

from __future__ import annotations

from typing import Final

KINDS: Final[dict[str, tuple[str, str]]] = {
    "appliance_offline": (
        "Appliance offline",
        "The cart's appliance has not been heard from; taps there are not reaching the ledger.",
    ),
    "overdue": (
        "Held too long",
        "A device has been checked out longer than the overdue limit; it may be lost or forgotten.",
    ),
    "holds_many": ("Holds many devices", "One person holds more devices than expected at once; a badge may be shared."),
    "seq_gap": (
        "Events missing",
        "Numbered events from an appliance skipped some; they may still arrive, or were lost.",
    ),
    "chain_break": (
        "Record altered",
        "An appliance's hash chain does not link up: events were changed, removed or forged.",
    ),
    "logoff_unconfirmed": (
        "Logoff not confirmed",
        "A workstation session was not confirmed ended by the device's agent.",
    ),
    "clock_unsynced": (
        "Clock not synchronised",
        "An appliance reports its clock unsynchronised, so its times may be wrong.",
    ),
    "clock_skew": ("Clock off", "An appliance's times run backwards or far from when the ledger received them."),
    "break_glass_review": (
        "Break-glass to review",
        "Someone used emergency access; an admin reviews what happened and closes it with a note.",
    ),
    "duplicate_conflict": ("Conflicting copies", "Two messages share an id but differ in content; one may be forged."),
    "concurrent_use": (
        "Badge in use twice",
        "One staff id holds a live session on two devices at once; a badge may be shared or copied.",
    ),
    "impossible_travel": (
        "Impossible travel",
        "One staff id tapped at two sites faster than anyone can travel between them.",
    ),
    "repeated_rejections": (
        "Rejected taps",
        "Many refused taps at one device in a short time; someone may be trying badges.",
    ),
    "off_hours": ("Outside shift", "A checkout outside the hours configured for the holder's role."),
}


def title(kind: str) -> str:
    return KINDS.get(kind, (kind.replace("_", " ").capitalize(), ""))[0]


def meaning(kind: str) -> str:
    return KINDS.get(kind, ("", "An exception the console has no description for."))[1]
