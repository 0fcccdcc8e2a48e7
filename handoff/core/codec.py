"""State to and from plain JSON-able dicts, so custody and session survive a restart."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast

from handoff.core.state import MODES, Custody, Mode, SessionEnd, State, Waiting
from handoff.timefmt import rfc3339


def state_to_dict(state: State) -> dict[str, Any]:
    """Spelled out field by field: this runs inside every commit, where `dataclasses.asdict`'s
    recursive deep copy cost more than the rest of the encoding."""
    custody = state.custody
    return {
        "mode": state.mode,
        "since": state.since,
        "custody": None
        if custody is None
        else {
            "staff_id": custody.staff_id,
            "badge_ref": custody.badge_ref,
            "since": custody.since,
            "session_id": custody.session_id,
            "session_start": custody.session_start,
            "last_activity": custody.last_activity,
            "last_accepted_tap": custody.last_accepted_tap,
        },
        "present": sorted([reader, ref] for reader, ref in state.present),
        "ends": [asdict(end) for end in state.ends],
        "last_end": state.last_end,
        "confirmed_upto": state.confirmed_upto,
        "waiting": None if state.waiting is None else asdict(state.waiting),
    }


def state_from_dict(raw: dict[str, Any]) -> State:
    mode = raw["mode"]
    if mode not in MODES:
        raise ValueError(f"unknown state {mode!r}")
    custody = raw.get("custody")
    return State(
        mode=cast(Mode, mode),
        since=float(raw["since"]),
        custody=Custody(**custody) if custody else None,
        present=frozenset((str(reader), str(ref)) for reader, ref in raw.get("present", [])),
        ends=tuple(SessionEnd(**end) for end in raw.get("ends", [])),
        last_end=raw.get("last_end"),
        confirmed_upto=raw.get("confirmed_upto"),
        waiting=Waiting(**raw["waiting"]) if raw.get("waiting") else None,
    )


def state_summary(state: State) -> dict[str, Any]:
    """The retained `state` message (docs/integration.md), without `seq` (the store adds it)."""
    return {
        "state": state.mode,
        "staff_id": state.custody.staff_id if state.custody else None,
        "session_id": state.live_session_id,
        "since": rfc3339(state.since),
    }
