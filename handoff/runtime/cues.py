"""Which signal a clinician gets for what just happened: derived from the events alone."""

from __future__ import annotations

from handoff.core.events import Event
from handoff.core.machine import AWAITING_RECEIPT, IGNORED_RETAP, Outcome
from handoff.feedback.cues import Cue


def cue_for(outcome: Outcome) -> Cue | None:
    """The one cue that answers the input; the most important wins when events pile up."""
    kinds = {(event.type, event.reason, event.previous_staff_id is not None) for event in outcome.events}
    types = {kind for kind, _, _ in kinds}
    if "tap_rejected" in types:
        return Cue.REJECTED
    if "logoff_unconfirmed" in types:
        return Cue.UNCONFIRMED
    if "break_glass" in types:
        return Cue.BREAK_GLASS
    if ("checkout", None, True) in kinds:
        return Cue.HANDOFF
    if types & {"checkout", "reauth"}:
        return Cue.ACCEPTED
    if any(kind == "checkin" and reason == "returned" for kind, reason, _ in kinds):
        return Cue.RETURNED
    if "forced_logoff" in types:
        return Cue.LOCKED
    if outcome.ignored in (IGNORED_RETAP, AWAITING_RECEIPT):
        return Cue.IGNORED
    return None


def describe(event: Event) -> str:
    """One journal line per event, with no badge identifier of any kind beyond a short ref."""
    parts: list[str] = [event.type]
    if event.staff_id:
        parts.append(f"staff={event.staff_id}")
    if event.previous_staff_id:
        parts.append(f"previous={event.previous_staff_id}")
    if event.reason:
        parts.append(f"reason={event.reason}")
    if event.for_id:
        parts.append(f"for={event.for_id}")
    if event.previous_logoff:
        parts.append(f"previous_logoff={event.previous_logoff}")
    if event.reader:
        parts.append(f"reader={event.reader}")
    if event.badge_ref:
        parts.append(f"badge_ref={event.badge_ref[:12]}")
    parts.append(f"handoff={event.handoff_id}")
    return " ".join(parts)
