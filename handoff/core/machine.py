"""The transition function of SPEC section 2: `step(state, input, now) -> (state, events)`.

`now` is the runtime's timeline, not the wall clock: epoch seconds when the appliance started,
then monotonic (CLOCK_BOOTTIME), so a clock step by NTP neither fires a timer early nor holds
one back. The shell stamps events and saves state in wall-clock time (`runtime/clock.py`).

Timers are not threads: every step first lets whatever deadline has passed fire, and
`next_deadline` tells the shell when to come back with a `Tick`. Ids come from an injected
`new_id` so that tests are deterministic and the core stays free of entropy and clocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, assert_never

from handoff.config import PolicyConfig
from handoff.core.events import Event, EventType
from handoff.core.inputs import (
    Activity,
    ForceLogoff,
    Input,
    Lift,
    Restart,
    Revoked,
    SetMaintenance,
    Tap,
    Tick,
)
from handoff.core.state import Custody, State

NewId = Callable[[], str]

IGNORED_RETAP: Final = "retap_guard"
IGNORED_PRESENT: Final = "badge_still_present"


@dataclass(frozen=True)
class Outcome:
    state: State
    events: tuple[Event, ...] = ()
    ignored: str | None = None
    """Why an input made no event (for the log line), e.g. `retap_guard`."""


def step(state: State, event_input: Input, now: float, policy: PolicyConfig, new_id: NewId) -> Outcome:
    if isinstance(event_input, Restart):
        restarted = _restart(state, now, new_id)
        expired = _expire(restarted.state, now, policy, new_id)
        return Outcome(expired.state, restarted.events + expired.events)
    expired = _expire(state, now, policy, new_id)
    handled = _handle(expired.state, event_input, now, policy, new_id)
    return Outcome(handled.state, expired.events + handled.events, handled.ignored)


def next_deadline(state: State, policy: PolicyConfig) -> float | None:
    """When the next timer fires if nothing else happens; None when no timer runs."""
    custody = state.custody
    if custody is None:
        return None
    if state.mode == "in_use":
        return min(custody.last_activity + policy.idle_timeout_s, custody.session_start + policy.max_session_s)
    if state.mode == "locked":
        return custody.since + policy.custody_timeout_s
    return None


def _expire(state: State, now: float, policy: PolicyConfig, new_id: NewId) -> Outcome:
    events: tuple[Event, ...] = ()
    while (custody := state.custody) is not None:
        if state.mode == "in_use":
            idle_at = custody.last_activity + policy.idle_timeout_s
            session_at = custody.session_start + policy.max_session_s
            if min(idle_at, session_at) > now:
                break
            reason = "idle_timeout" if idle_at <= session_at else "max_session"
            events += (_event("forced_logoff", custody, now, new_id(), reason=reason),)
            state = replace(state, mode="locked", since=now)
        elif state.mode == "locked" and custody.since + policy.custody_timeout_s <= now:
            events += (_event("checkin", custody, now, new_id(), reason="abandoned"),)
            state = replace(state, mode="available", since=now, custody=None)
        else:
            break
    return Outcome(state, events)


def _handle(state: State, event_input: Input, now: float, policy: PolicyConfig, new_id: NewId) -> Outcome:
    match event_input:
        case Tap():
            return _tap(state, event_input, now, policy, new_id)
        case Lift(reader=reader, badge_ref=badge_ref):
            return Outcome(replace(state, present=state.present - {(reader, badge_ref)}))
        case Activity():
            if state.mode == "in_use" and state.custody:
                return Outcome(replace(state, custody=replace(state.custody, last_activity=now)))
            return Outcome(state, ignored="no_live_session")
        case Revoked(staff_id=staff_id):
            if state.custody is None or state.custody.staff_id != staff_id:
                return Outcome(state, ignored="not_the_holder")
            return _end_custody(state, now, new_id(), "revoked")
        case ForceLogoff():
            if state.mode != "in_use" or state.custody is None:
                return Outcome(state, ignored="no_live_session")
            event = _event("forced_logoff", state.custody, now, new_id(), reason="remote")
            return Outcome(replace(state, mode="locked", since=now), (event,))
        case SetMaintenance(on=on):
            return _maintenance(state, on, now, new_id)
        case Tick() | Restart():
            return Outcome(state)
    assert_never(event_input)


def _maintenance(state: State, on: bool, now: float, new_id: NewId) -> Outcome:
    if on == (state.mode == "maintenance"):
        return Outcome(state, ignored="already_in_maintenance" if on else "not_in_maintenance")
    if not on:
        return Outcome(replace(state, mode="available", since=now))
    ended = _end_custody(state, now, new_id(), "maintenance")
    return Outcome(replace(ended.state, mode="maintenance"), ended.events)


def _tap(state: State, tap: Tap, now: float, policy: PolicyConfig, new_id: NewId) -> Outcome:
    if tap.badge_ref is not None:
        key = (tap.reader, tap.badge_ref)
        if key in state.present:
            return Outcome(state, ignored=IGNORED_PRESENT)
        state = replace(state, present=state.present | {key})
    rejection = _rejection(state, tap)
    if rejection is not None or tap.staff_id is None or tap.badge_ref is None:
        rejected = Event(
            "tap_rejected",
            now,
            new_id(),
            badge_ref=tap.badge_ref,
            reason=rejection or "unknown_badge",
            reader=tap.reader,
        )
        return Outcome(state, (rejected,))
    custody = state.custody
    if custody is None:
        return _checkout(state, tap, now, new_id(), new_id)
    if custody.staff_id == tap.staff_id:
        if state.mode == "locked":
            session = new_id()
            resumed = replace(custody, session_id=session, session_start=now, last_activity=now, last_accepted_tap=now)
            event = _event("reauth", resumed, now, new_id(), reader=tap.reader, badge_ref=tap.badge_ref)
            return Outcome(replace(state, mode="in_use", since=now, custody=resumed), (event,))
        if now - custody.last_accepted_tap < policy.retap_guard_s:
            return Outcome(replace(state, custody=replace(custody, last_activity=now)), ignored=IGNORED_RETAP)
        checkin = _event(
            "checkin", custody, now, new_id(), reason="returned", reader=tap.reader, badge_ref=tap.badge_ref
        )
        return Outcome(replace(state, mode="available", since=now, custody=None), (checkin,))
    handoff_id = new_id()
    ended = _end_custody(state, now, handoff_id, "handoff", reader=tap.reader)
    taken = _checkout(ended.state, tap, now, handoff_id, new_id, custody.staff_id)
    return Outcome(taken.state, ended.events + taken.events)


def _rejection(state: State, tap: Tap) -> str | None:
    if tap.rejection is not None:
        return tap.rejection
    if tap.staff_id is None:
        return "unknown_badge"
    if tap.revoked:
        return "revoked"
    if state.mode == "maintenance":
        return "maintenance"
    return None


def _checkout(
    state: State, tap: Tap, now: float, handoff_id: str, new_id: NewId, previous_staff_id: str | None = None
) -> Outcome:
    assert tap.staff_id is not None and tap.badge_ref is not None
    custody = Custody(
        staff_id=tap.staff_id,
        badge_ref=tap.badge_ref,
        since=now,
        session_id=new_id(),
        session_start=now,
        last_activity=now,
        last_accepted_tap=now,
    )
    event = _event("checkout", custody, now, handoff_id, reader=tap.reader, previous_staff_id=previous_staff_id)
    return Outcome(replace(state, mode="in_use", since=now, custody=custody), (event,))


def _end_custody(state: State, now: float, handoff_id: str, reason: str, reader: str | None = None) -> Outcome:
    """Log the holder off (when their session is live) and check the device in, as one handoff."""
    custody = state.custody
    if custody is None:
        return Outcome(replace(state, mode="available", since=now))
    events: tuple[Event, ...] = ()
    if state.mode == "in_use":
        events += (_event("forced_logoff", custody, now, handoff_id, reason=reason, reader=reader),)
    events += (_event("checkin", custody, now, handoff_id, reason=reason, reader=reader),)
    return Outcome(replace(state, mode="available", since=now, custody=None), events)


def _restart(state: State, now: float, new_id: NewId) -> Outcome:
    state = replace(state, present=frozenset())
    if state.mode != "in_use" or state.custody is None:
        return Outcome(state)
    event = _event("forced_logoff", state.custody, now, new_id(), reason="restart")
    return Outcome(replace(state, mode="locked", since=now), (event,))


def _event(
    kind: EventType,
    custody: Custody,
    now: float,
    handoff_id: str,
    *,
    reason: str | None = None,
    reader: str | None = None,
    badge_ref: str | None = None,
    previous_staff_id: str | None = None,
) -> Event:
    return Event(
        type=kind,
        time=now,
        handoff_id=handoff_id,
        staff_id=custody.staff_id,
        badge_ref=badge_ref or custody.badge_ref,
        session_id=custody.session_id,
        reason=reason,
        previous_staff_id=previous_staff_id,
        reader=reader,
    )
