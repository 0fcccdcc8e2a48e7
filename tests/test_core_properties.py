"""Property-based tests: random sequences of taps, timeouts, restarts and revocations."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.core.codec import state_from_dict, state_to_dict
from handoff.core.events import Event
from handoff.core.inputs import Activity, ForceLogoff, Input, Lift, Restart, Revoked, SetMaintenance, Tap, Tick
from handoff.core.machine import IGNORED_PRESENT, IGNORED_RETAP, step
from handoff.core.policy import Policy
from handoff.core.state import State, initial_state

POLICY = Policy(
    idle_timeout_s=30,
    max_session_s=100,
    custody_timeout_s=200,
    retap_guard_s=2,
    break_glass_hold_s=3.0,
    break_glass_unknown=False,
    break_glass_per_30d=2,
)
STAFF = ["A", "B", "C"]
READERS = ["nfc:usb", "pcsc:Virtual PCD 00 00"]

taps = st.builds(
    lambda staff, reader, revoked, unknown: Tap(
        reader=reader, badge_ref=f"ref-{staff}", staff_id=None if unknown else staff, revoked=revoked
    ),
    st.sampled_from(STAFF),
    st.sampled_from(READERS),
    st.sampled_from([False, False, True]),
    st.sampled_from([False, False, False, True]),
)
lifts = st.builds(lambda s, r: Lift(r, f"ref-{s}"), st.sampled_from(STAFF), st.sampled_from(READERS))
inputs: st.SearchStrategy[Input] = st.one_of(
    taps,
    taps,
    lifts,
    lifts,
    st.just(Tick()),
    st.just(Activity()),
    st.just(Restart()),
    st.just(ForceLogoff()),
    st.builds(Revoked, st.sampled_from(STAFF)),
    st.builds(SetMaintenance, st.booleans()),
)
steps = st.lists(st.tuples(inputs, st.floats(min_value=0, max_value=60, allow_nan=False)), max_size=60)


class Shadow:
    """Rebuilds custody from the event stream alone, as a consumer of the topic would."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.live = False

    def apply(self, event: Event) -> None:
        match event.type:
            case "checkout":
                assert self.holder is None, "checkout while someone holds the device"
                self.holder, self.live = event.staff_id, True
            case "checkin":
                assert self.holder == event.staff_id is not None
                self.holder, self.live = None, False
            case "forced_logoff":
                assert self.live and self.holder == event.staff_id
                self.live = False
            case "reauth":
                assert not self.live and self.holder == event.staff_id
                self.live = True
            case "tap_rejected":
                assert event.staff_id is None and event.reason


def assert_consistent(state: State) -> None:
    if state.mode in ("available", "maintenance"):
        assert state.custody is None
    else:
        assert state.custody is not None
    assert (state.live_session_id is not None) == (state.mode == "in_use")


def assert_handoffs_well_formed(after_timers: State, events: tuple[Event, ...]) -> None:
    """A checkout taking over from A follows A's checkin, and A's logoff if A was logged in."""
    for index, event in enumerate(events):
        if event.type != "checkout" or event.previous_staff_id is None:
            continue
        prior = [(e.type, e.staff_id, e.reason) for e in events[:index] if e.handoff_id == event.handoff_id]
        previous = event.previous_staff_id
        expected = [("checkin", previous, "handoff")]
        if after_timers.mode == "in_use":
            expected.insert(0, ("forced_logoff", previous, "handoff"))
        assert prior == expected


@settings(max_examples=300, deadline=None)
@given(steps)
def test_random_sequences_keep_the_invariants(sequence: list[tuple[Input, float]]) -> None:
    ids = itertools.count()
    now = 0.0
    state = initial_state(now)
    shadow = Shadow()
    for event_input, delay in sequence:
        now += delay
        timers_only = step(state, Tick(), now, POLICY, lambda: f"t{next(ids)}")
        outcome = step(state, event_input, now, POLICY, lambda: f"id{next(ids)}")
        if outcome.ignored in (IGNORED_PRESENT, IGNORED_RETAP):
            assert [e.type for e in outcome.events] == [e.type for e in timers_only.events]
        for event in outcome.events:
            assert event.time == now
            shadow.apply(event)
        assert_handoffs_well_formed(timers_only.state, outcome.events)
        state = outcome.state
        assert_consistent(state)
        assert shadow.holder == (state.custody.staff_id if state.custody else None)
        assert shadow.live == (state.mode == "in_use")
        assert state_from_dict(state_to_dict(state)) == state


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(STAFF), min_size=2, max_size=12), st.floats(min_value=0, max_value=1))
def test_checkout_of_b_is_always_preceded_by_logoff_and_checkin_of_a(holders: list[str], gap: float) -> None:
    ids = itertools.count()
    now = 0.0
    state = initial_state(now)
    for staff in holders:
        now += gap
        before = step(state, Tick(), now, POLICY, lambda: "unused").state
        outcome = step(state, Tap("nfc:usb", f"ref-{staff}", staff), now, POLICY, lambda: f"id{next(ids)}")
        state = step(outcome.state, Lift("nfc:usb", f"ref-{staff}"), now, POLICY, lambda: "unused").state
        if before.custody and before.custody.staff_id != staff:
            previous = before.custody.staff_id
            assert [(e.type, e.staff_id, e.reason) for e in outcome.events] == [
                ("forced_logoff", previous, "handoff"),
                ("checkin", previous, "handoff"),
                ("checkout", staff, None),
            ]
            assert len({e.handoff_id for e in outcome.events}) == 1
        if before.custody is None:
            assert [e.type for e in outcome.events] == ["checkout"]
