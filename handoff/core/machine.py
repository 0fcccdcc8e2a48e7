"""The appliance's state machine as one transition function: `step(state, input, now) -> (state, events)`.

`now` is the runtime's timeline, not the wall clock: epoch seconds when the appliance started,
then monotonic (CLOCK_BOOTTIME), so a clock step by NTP neither fires a timer early nor holds
one back. The shell stamps events and saves state in wall-clock time (`runtime/clock.py`).

Timers are not threads: every step first lets whatever deadline has passed fire, and
`next_deadline` tells the shell when to come back with a `Tick`. Ids come from an injected
`new_id` so that tests are deterministic and the core stays free of entropy and clocks.

With an agent (`agent`, docs/agent.md) every session end waits `confirm_s` for a receipt:
the wait is one more timer, the receipt one more input, and both live in the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, assert_never

from handoff.config import AgentConfig, PolicyConfig
from handoff.core.events import Event, EventType
from handoff.core.inputs import (
    Activity,
    ForceLogoff,
    Input,
    Lift,
    Receipt,
    Restart,
    Revoked,
    SetMaintenance,
    Tap,
    Tick,
)
from handoff.core.state import Custody, SessionEnd, State, Waiting

NewId = Callable[[], str]

IGNORED_RETAP: Final = "retap_guard"
IGNORED_PRESENT: Final = "badge_still_present"
AWAITING_RECEIPT: Final = "awaiting_receipt"
ENDS_KEPT: Final = 16
"""Unconfirmed session ends kept for a late receipt; older ones are forgotten (and a receipt
for one is then counted as unknown)."""


@dataclass(frozen=True)
class Outcome:
    state: State
    events: tuple[Event, ...] = ()
    ignored: str | None = None
    """Why an input made no event (for the log line), e.g. `retap_guard`."""


def step(
    state: State,
    event_input: Input,
    now: float,
    policy: PolicyConfig,
    new_id: NewId,
    agent: AgentConfig | None = None,
) -> Outcome:
    if isinstance(event_input, Restart):
        restarted = _restart(state, now, new_id)
        expired = _expire(restarted.state, now, policy, new_id, agent)
        return _tracked(Outcome(expired.state, restarted.events + expired.events), agent)
    expired = _expire(state, now, policy, new_id, agent)
    handled = _handle(expired.state, event_input, now, policy, new_id, agent)
    return _tracked(Outcome(handled.state, expired.events + handled.events, handled.ignored), agent)


def next_deadline(state: State, policy: PolicyConfig, agent: AgentConfig | None = None) -> float | None:
    """When the next timer fires if nothing else happens; None when no timer runs."""
    deadlines = [end.ended_at + agent.confirm_s for end in state.ends if end.answer == "pending"] if agent else []
    custody = state.custody
    if custody is not None and state.mode == "in_use":
        deadlines.append(
            min(custody.last_activity + policy.idle_timeout_s, custody.session_start + policy.max_session_s)
        )
    elif custody is not None and state.mode == "locked":
        deadlines.append(custody.since + policy.custody_timeout_s)
    return min(deadlines, default=None)


def _tracked(outcome: Outcome, agent: AgentConfig | None) -> Outcome:
    """Every session end made in this step starts waiting for its receipt, and every checkout
    says how the session end before it stands, in event order.

    Done once here, after the transition, so that no path that ends a session can forget it.
    """
    if agent is None or not outcome.events:
        return outcome
    state = outcome.state
    ends = list(state.ends)
    last_end = state.last_end
    events: list[Event] = []
    for event in outcome.events:
        if event.type == "forced_logoff" or (event.type == "checkin" and event.reason == "returned"):
            assert event.staff_id is not None and event.badge_ref is not None and event.session_id is not None
            ends.append(
                SessionEnd(event.id, event.staff_id, event.badge_ref, event.session_id, event.handoff_id, event.time)
            )
            last_end = event.id
            events.append(event)
        elif event.type == "checkout":
            standing = replace(state, ends=tuple(ends), last_end=last_end).last_logoff
            events.append(replace(event, previous_logoff=standing))
        else:
            events.append(event)
    return replace(
        outcome, state=replace(state, ends=tuple(ends[-ENDS_KEPT:]), last_end=last_end), events=tuple(events)
    )


def _expire(state: State, now: float, policy: PolicyConfig, new_id: NewId, agent: AgentConfig | None) -> Outcome:
    events: tuple[Event, ...] = ()
    if agent is not None:
        for end in state.ends:
            if end.answer == "pending" and end.ended_at + agent.confirm_s <= now:
                answered = _unconfirmed(state, end, now, new_id, "timeout")
                state, events = answered.state, events + answered.events
    while (custody := state.custody) is not None:
        if state.mode == "in_use":
            idle_at = custody.last_activity + policy.idle_timeout_s
            session_at = custody.session_start + policy.max_session_s
            if min(idle_at, session_at) > now:
                break
            reason = "idle_timeout" if idle_at <= session_at else "max_session"
            events += (_event("forced_logoff", custody, now, new_id(), new_id, reason=reason),)
            state = replace(state, mode="locked", since=now)
        elif state.mode == "locked" and custody.since + policy.custody_timeout_s <= now:
            events += (_event("checkin", custody, now, new_id(), new_id, reason="abandoned"),)
            state = replace(state, mode="available", since=now, custody=None)
        else:
            break
    return Outcome(state, events)


def _unconfirmed(state: State, end: SessionEnd, now: float, new_id: NewId, reason: str) -> Outcome:
    """No receipt in time, or one saying the logoff failed: a badge waiting for this session end
    is refused, and the holder, if any, keeps custody."""
    answered = tuple(replace(other, answer="unconfirmed") if other is end else other for other in state.ends)
    events: tuple[Event, ...] = (_answer("logoff_unconfirmed", end, now, new_id, reason=reason),)
    waiting = state.waiting
    if waiting is not None and waiting.for_id == end.event_id:
        events += (_refused(waiting.reader, waiting.badge_ref, now, new_id, "previous_session_open"),)
        waiting = None
    return Outcome(replace(state, ends=answered, waiting=waiting), events)


def _receipt(state: State, receipt: Receipt, now: float, new_id: NewId, agent: AgentConfig | None) -> Outcome:
    end = next((end for end in state.ends if end.event_id == receipt.for_id), None) if agent else None
    if end is None:
        return Outcome(state, ignored="unknown_event")
    if not receipt.done:
        if end.answer == "unconfirmed":
            return Outcome(state, ignored="already_answered")
        return _unconfirmed(state, end, now, new_id, "failed")
    confirmed_upto = max(end.ended_at, state.confirmed_upto or end.ended_at)
    ends = tuple(other for other in state.ends if other is not end)
    state = replace(state, ends=ends, confirmed_upto=confirmed_upto)
    events: tuple[Event, ...] = (_answer("logoff_confirmed", end, now, new_id),)
    waiting = state.waiting
    if waiting is None or waiting.for_id != end.event_id:
        return Outcome(state, events)
    state = replace(state, waiting=None)
    tap = Tap(waiting.reader, waiting.badge_ref, waiting.staff_id)
    custody = state.custody
    if custody is None:
        taken = _checkout(state, tap, now, end.handoff_id, new_id)
        return Outcome(taken.state, events + taken.events)
    ended = _end_custody(state, now, end.handoff_id, "handoff", new_id, reader=waiting.reader)
    taken = _checkout(ended.state, tap, now, end.handoff_id, new_id, custody.staff_id)
    return Outcome(taken.state, events + ended.events + taken.events)


def _handle(
    state: State, event_input: Input, now: float, policy: PolicyConfig, new_id: NewId, agent: AgentConfig | None
) -> Outcome:
    match event_input:
        case Tap():
            return _tap(state, event_input, now, policy, new_id, agent)
        case Lift(reader=reader, badge_ref=badge_ref, card_pulled=card_pulled):
            state = replace(state, present=state.present - {(reader, badge_ref)})
            custody = state.custody
            if card_pulled and state.mode == "in_use" and custody is not None and custody.badge_ref == badge_ref:
                event = _event("forced_logoff", custody, now, new_id(), new_id, reason="card_removed")
                return Outcome(replace(state, mode="locked", since=now), (event,))
            return Outcome(state)
        case Activity():
            if state.mode == "in_use" and state.custody:
                return Outcome(replace(state, custody=replace(state.custody, last_activity=now)))
            return Outcome(state, ignored="no_live_session")
        case Revoked(staff_id=staff_id):
            if state.custody is None or state.custody.staff_id != staff_id:
                return Outcome(state, ignored="not_the_holder")
            return _end_custody(replace(state, waiting=None), now, new_id(), "revoked", new_id)
        case ForceLogoff():
            if state.mode != "in_use" or state.custody is None:
                return Outcome(state, ignored="no_live_session")
            event = _event("forced_logoff", state.custody, now, new_id(), new_id, reason="remote")
            return Outcome(replace(state, mode="locked", since=now), (event,))
        case SetMaintenance(on=on):
            return _maintenance(state, on, now, new_id)
        case Receipt():
            return _receipt(state, event_input, now, new_id, agent)
        case Tick() | Restart():
            return Outcome(state)
    assert_never(event_input)


def _maintenance(state: State, on: bool, now: float, new_id: NewId) -> Outcome:
    if on == (state.mode == "maintenance"):
        return Outcome(state, ignored="already_in_maintenance" if on else "not_in_maintenance")
    if not on:
        return Outcome(replace(state, mode="available", since=now))
    ended = _end_custody(replace(state, waiting=None), now, new_id(), "maintenance", new_id)
    return Outcome(replace(ended.state, mode="maintenance"), ended.events)


def _tap(state: State, tap: Tap, now: float, policy: PolicyConfig, new_id: NewId, agent: AgentConfig | None) -> Outcome:
    if tap.badge_ref is not None:
        key = (tap.reader, tap.badge_ref)
        if key in state.present:
            return Outcome(state, ignored=IGNORED_PRESENT)
        state = replace(state, present=state.present | {key})
    rejection = _rejection(state, tap)
    if rejection is not None or tap.staff_id is None or tap.badge_ref is None:
        return Outcome(state, (_refused(tap.reader, tap.badge_ref, now, new_id, rejection or "unknown_badge"),))
    custody = state.custody
    if agent is not None and agent.require_confirmed and _blocked_by_last_end(state, tap.staff_id):
        return _wait_for_receipt(state, tap, now, new_id)
    if custody is None:
        return _checkout(state, tap, now, new_id(), new_id)
    if custody.staff_id == tap.staff_id:
        if state.mode == "locked":
            session = new_id()
            resumed = replace(custody, session_id=session, session_start=now, last_activity=now, last_accepted_tap=now)
            event = _event("reauth", resumed, now, new_id(), new_id, reader=tap.reader, badge_ref=tap.badge_ref)
            return Outcome(replace(state, mode="in_use", since=now, custody=resumed, waiting=None), (event,))
        if now - custody.last_accepted_tap < policy.retap_guard_s:
            return Outcome(replace(state, custody=replace(custody, last_activity=now)), ignored=IGNORED_RETAP)
        checkin = _event(
            "checkin", custody, now, new_id(), new_id, reason="returned", reader=tap.reader, badge_ref=tap.badge_ref
        )
        return Outcome(replace(state, mode="available", since=now, custody=None), (checkin,))
    if agent is not None and agent.require_confirmed and state.mode == "in_use":
        handoff_id = new_id()
        logoff = _event("forced_logoff", custody, now, handoff_id, new_id, reason="handoff", reader=tap.reader)
        waiting = Waiting(tap.staff_id, tap.badge_ref, tap.reader, logoff.id)
        return Outcome(replace(state, mode="locked", since=now, waiting=waiting), (logoff,))
    handoff_id = new_id()
    ended = _end_custody(state, now, handoff_id, "handoff", new_id, reader=tap.reader)
    taken = _checkout(ended.state, tap, now, handoff_id, new_id, custody.staff_id)
    return Outcome(taken.state, ended.events + taken.events)


def _blocked_by_last_end(state: State, staff_id: str) -> bool:
    """With `require_confirmed`, whether another badge must wait for the last session end.

    The holder's own badge is never held back, nor the badge of whoever's session it was; a
    live session is first ended by the tap itself, which then waits for that end's receipt.
    """
    if state.mode == "in_use" or (state.custody is not None and state.custody.staff_id == staff_id):
        return False
    last = next((end for end in state.ends if end.event_id == state.last_end), None)
    return last is not None and last.staff_id != staff_id


def _wait_for_receipt(state: State, tap: Tap, now: float, new_id: NewId) -> Outcome:
    """A pending session end: this badge waits for its receipt, unless another already does.
    An unconfirmed one: refused."""
    assert tap.staff_id is not None and tap.badge_ref is not None
    last = next(end for end in state.ends if end.event_id == state.last_end)
    if last.answer == "pending" and state.waiting is None:
        waiting = Waiting(tap.staff_id, tap.badge_ref, tap.reader, last.event_id)
        return Outcome(replace(state, waiting=waiting), ignored=AWAITING_RECEIPT)
    if state.waiting is not None and state.waiting.badge_ref == tap.badge_ref:
        return Outcome(state, ignored=AWAITING_RECEIPT)
    return Outcome(state, (_refused(tap.reader, tap.badge_ref, now, new_id, "previous_session_open"),))


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
    event = _event("checkout", custody, now, handoff_id, new_id, reader=tap.reader, previous_staff_id=previous_staff_id)
    return Outcome(replace(state, mode="in_use", since=now, custody=custody, waiting=None), (event,))


def _end_custody(
    state: State, now: float, handoff_id: str, reason: str, new_id: NewId, reader: str | None = None
) -> Outcome:
    """Log the holder off (when their session is live) and check the device in, as one handoff."""
    custody = state.custody
    if custody is None:
        return Outcome(replace(state, mode="available", since=now))
    events: tuple[Event, ...] = ()
    if state.mode == "in_use":
        events += (_event("forced_logoff", custody, now, handoff_id, new_id, reason=reason, reader=reader),)
    events += (_event("checkin", custody, now, handoff_id, new_id, reason=reason, reader=reader),)
    return Outcome(replace(state, mode="available", since=now, custody=None), events)


def _restart(state: State, now: float, new_id: NewId) -> Outcome:
    state = replace(state, present=frozenset())
    if state.mode != "in_use" or state.custody is None:
        return Outcome(state)
    event = _event("forced_logoff", state.custody, now, new_id(), new_id, reason="restart")
    return Outcome(replace(state, mode="locked", since=now), (event,))


def _refused(reader: str, badge_ref: str | None, now: float, new_id: NewId, reason: str) -> Event:
    return Event("tap_rejected", now, new_id(), badge_ref=badge_ref, reason=reason, reader=reader, id=new_id())


def _answer(kind: EventType, end: SessionEnd, now: float, new_id: NewId, reason: str | None = None) -> Event:
    """logoff_confirmed / logoff_unconfirmed, under the handoff of the session end they answer."""
    return Event(
        type=kind,
        time=now,
        handoff_id=end.handoff_id,
        staff_id=end.staff_id,
        badge_ref=end.badge_ref,
        session_id=end.session_id,
        reason=reason,
        for_id=end.event_id,
        id=new_id(),
    )


def _event(
    kind: EventType,
    custody: Custody,
    now: float,
    handoff_id: str,
    new_id: NewId,
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
        id=new_id(),
    )
