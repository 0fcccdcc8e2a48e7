"""Break-glass, role change and the idle warning, driven through the pure core with a moved clock."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.core.codec import state_from_dict, state_summary, state_to_dict
from handoff.core.inputs import (
    Activity,
    BreakGlass,
    HolderRole,
    Input,
    Lift,
    Receipt,
    Revoked,
    SetMaintenance,
    Tap,
    Tick,
    WarnIdle,
)
from handoff.core.machine import BREAK_GLASS_SESSION, BREAK_GLASS_WINDOW_S, NOTHING_TO_OVERRIDE, idle_warning_due, step
from handoff.core.policy import AgentPolicy, Policy
from handoff.core.state import initial_state, shifted
from tests.kit.core import Cart, badge, held, kinds

POLICY = Policy(
    idle_timeout_s=300,
    max_session_s=3600,
    custody_timeout_s=7200,
    retap_guard_s=2.0,
    break_glass_hold_s=3.0,
    break_glass_unknown=False,
    break_glass_per_30d=2,
)
ANA, BO = badge("ana"), badge("bo")
BO_REVOKED = badge("bo", revoked=True)
STRANGER = badge(None, ref="f" * 64)


def require_confirmed() -> AgentPolicy:
    return AgentPolicy(confirm_s=10, require_confirmed=True)


def in_use_by_ana(policy: Policy = POLICY, agent: AgentPolicy | None = None) -> Cart:
    cart = Cart(policy, agent)
    cart.present(ANA)
    return cart


# Role change


def test_a_new_role_for_the_holder_ends_the_session_and_the_next_tap_opens_one_under_it() -> None:
    cart = in_use_by_ana()
    ended = cart.feed(HolderRole("ana", "MD"), after=5)
    assert kinds(ended.events) == [("forced_logoff", "ana", "role_changed")]
    assert cart.state.mode == "locked" and cart.state.custody and cart.state.custody.staff_id == "ana"
    again = cart.present(badge("ana", role="MD"), after=5)
    assert kinds(again.events) == [("reauth", "ana", None)]
    assert cart.state.custody and cart.state.custody.role == "MD"
    assert cart.feed(HolderRole("ana", "MD"), after=1).ignored == "role_unchanged"


def test_the_same_role_another_staff_or_a_locked_holder_ends_nothing() -> None:
    cart = in_use_by_ana()
    assert cart.feed(HolderRole("ana", "RN")).ignored == "role_unchanged"
    assert cart.feed(HolderRole("bo", "MD")).ignored == "not_the_holder"
    cart.feed(Tick(), after=POLICY.idle_timeout_s)
    assert cart.state.mode == "locked"
    outcome = cart.feed(HolderRole("ana", "MD"))
    assert outcome.events == () and outcome.ignored == "no_live_session"


# Break-glass: each refusal it overrides


def test_a_revoked_badge_held_on_the_reader_gets_the_device_as_break_glass() -> None:
    cart = Cart(POLICY)
    tapped, asked = cart.hold(BO_REVOKED)
    assert kinds(tapped.events) == [("tap_rejected", None, "revoked")]
    assert kinds(asked.events) == [("break_glass", "bo", "revoked"), ("checkout", "bo", None)]
    declared, checkout = asked.events
    assert declared.session_id == checkout.session_id == cart.state.live_session_id
    assert declared.handoff_id == checkout.handoff_id and checkout.break_glass
    assert cart.state.break_glass_session and state_summary(cart.state)["break_glass"] is True


def test_break_glass_over_another_holder_logs_them_off_as_a_handoff() -> None:
    cart = in_use_by_ana()
    _, asked = cart.hold(BO_REVOKED, after=10)
    assert kinds(asked.events) == [
        ("forced_logoff", "ana", "handoff"),
        ("checkin", "ana", "handoff"),
        ("break_glass", "bo", "revoked"),
        ("checkout", "bo", None),
    ]
    assert len({e.handoff_id for e in asked.events}) == 1
    assert asked.events[-1].previous_staff_id == "ana"


def test_an_unknown_badge_is_refused_unless_the_policy_allows_it() -> None:
    cart = Cart(POLICY)
    _, asked = cart.hold(STRANGER)
    assert kinds(asked.events) == [("tap_rejected", None, "break_glass_unknown_badge")]
    assert cart.state.mode == "available" and cart.state.break_glass_uses == ()
    lenient = Cart(replace(POLICY, break_glass_unknown=True))
    _, asked = lenient.hold(STRANGER)
    stand_in = "unknown-" + "f" * 16
    assert kinds(asked.events) == [("break_glass", stand_in, "unknown_badge"), ("checkout", stand_in, None)]


def test_an_expired_piv_card_breaks_the_glass_and_its_holder_returns_the_device_with_it() -> None:
    cart = Cart(POLICY)
    card = Tap("pcsc:x", "e" * 64, "dee", rejection="piv_expired", role="RN")
    tapped = cart.feed(card)
    assert kinds(tapped.events) == [("tap_rejected", None, "piv_expired")]
    assert tapped.events[0].badge_ref == "e" * 64
    asked = cart.feed(BreakGlass("pcsc:x", "e" * 64, "dee", role="RN", expired=True))
    assert kinds(asked.events) == [("break_glass", "dee", "expired"), ("checkout", "dee", None)]
    cart.feed(Lift("pcsc:x", "e" * 64), after=1)
    assert kinds(cart.present(card, after=POLICY.retap_guard_s).events) == [("checkin", "dee", "returned")]


def test_a_badge_waiting_for_the_previous_logoff_breaks_the_glass_and_the_receipt_still_counts() -> None:
    cart = in_use_by_ana(agent=require_confirmed())
    tapped, asked = cart.hold(BO, after=10)
    assert kinds(tapped.events) == [("forced_logoff", "ana", "handoff")]
    logoff = tapped.events[0]
    assert kinds(asked.events) == [
        ("checkin", "ana", "handoff"),
        ("break_glass", "bo", "previous_session_open"),
        ("checkout", "bo", None),
    ]
    assert {e.handoff_id for e in asked.events} == {logoff.handoff_id}
    assert asked.events[-1].previous_logoff == "pending" and cart.state.waiting is None
    late = cart.feed(Receipt(logoff.id, done=True), after=1)
    assert kinds(late.events) == [("logoff_confirmed", "ana", None)]
    assert cart.state.mode == "in_use" and cart.state.custody and cart.state.custody.staff_id == "bo"


def test_an_unconfirmed_logoff_that_refuses_the_tap_is_overridden() -> None:
    cart = in_use_by_ana(agent=require_confirmed())
    cart.present(ANA, after=10)
    cart.feed(Tick(), after=11)
    tapped, asked = cart.hold(BO, after=1)
    assert kinds(tapped.events) == [("tap_rejected", None, "previous_session_open")]
    assert kinds(asked.events) == [("break_glass", "bo", "previous_session_open"), ("checkout", "bo", None)]


def test_a_hold_where_the_tap_got_the_device_overrides_nothing_and_counts_no_use() -> None:
    cart = Cart(POLICY)
    tapped, asked = cart.hold(ANA)
    assert kinds(tapped.events) == [("checkout", "ana", None)]
    assert asked.events == () and asked.ignored == NOTHING_TO_OVERRIDE
    assert cart.state.break_glass_uses == () and not cart.state.break_glass_session
    handed, asked = cart.hold(BO, after=10)
    assert [e.type for e in handed.events] == ["forced_logoff", "checkin", "checkout"]
    assert asked.ignored == NOTHING_TO_OVERRIDE


def test_maintenance_is_not_overridden() -> None:
    cart = Cart(POLICY)
    cart.feed(SetMaintenance(True))
    _, asked = cart.hold(BO_REVOKED, after=1)
    assert kinds(asked.events) == [("tap_rejected", None, "maintenance")]
    assert cart.state.mode == "maintenance"


# The limit


def test_the_limit_per_staff_member_holds_for_30_days_then_lets_them_again() -> None:
    cart = Cart(POLICY)
    for _ in range(POLICY.break_glass_per_30d):
        _, asked = cart.hold(BO_REVOKED, after=60)
        assert asked.events[0].type == "break_glass"
        cart.feed(SetMaintenance(True), after=1)
        cart.feed(SetMaintenance(False), after=1)
    _, refused = cart.hold(BO_REVOKED, after=60)
    assert kinds(refused.events) == [("tap_rejected", None, "break_glass_limit")]
    assert cart.state.mode == "available"
    _, others = cart.hold(badge("cy", revoked=True), after=1)
    assert others.events[0].type == "break_glass", "the limit is per staff member"
    first_use = cart.state.break_glass_uses[0].at
    cart.now = first_use + BREAK_GLASS_WINDOW_S
    _, again = cart.hold(BO_REVOKED, after=1)
    assert [e.type for e in again.events][-2:] == ["break_glass", "checkout"]
    assert all(use.at > cart.now - BREAK_GLASS_WINDOW_S for use in cart.state.break_glass_uses)


def test_the_count_survives_the_state_being_saved_and_loaded_on_another_timeline() -> None:
    cart = Cart(replace(POLICY, break_glass_per_30d=1))
    cart.hold(BO_REVOKED)
    cart.feed(SetMaintenance(True), after=1)
    cart.feed(SetMaintenance(False), after=1)
    saved = state_to_dict(shifted(cart.state, 1_700_000_000.0))
    cart.state = shifted(state_from_dict(saved), -1_700_000_000.0)
    _, refused = cart.hold(BO_REVOKED, after=5)
    assert kinds(refused.events) == [("tap_rejected", None, "break_glass_limit")]


def test_no_use_at_all_with_a_limit_of_zero() -> None:
    cart = Cart(replace(POLICY, break_glass_per_30d=0))
    _, refused = cart.hold(BO_REVOKED)
    assert kinds(refused.events) == [("tap_rejected", None, "break_glass_limit")]


# The break-glass session


def test_a_revocation_does_not_end_a_break_glass_session_but_the_idle_lock_does() -> None:
    cart = Cart(POLICY)
    cart.hold(BO_REVOKED)
    outcome = cart.feed(Revoked("bo"), after=1)
    assert outcome.events == () and outcome.ignored == BREAK_GLASS_SESSION
    locked = cart.feed(Tick(), after=POLICY.idle_timeout_s)
    assert kinds(locked.events) == [("forced_logoff", "bo", "idle_timeout")]
    assert not cart.state.break_glass_session and state_summary(cart.state)["break_glass"] is False
    assert kinds(cart.present(BO_REVOKED, after=1).events) == [("tap_rejected", None, "revoked")]


def test_the_break_glass_holder_returns_the_device_with_the_same_badge() -> None:
    cart = Cart(replace(POLICY, break_glass_unknown=True))
    cart.hold(STRANGER)
    assert cart.present(STRANGER, after=1).ignored == "retap_guard"
    returned = cart.present(STRANGER, after=POLICY.retap_guard_s)
    assert kinds(returned.events) == [("checkin", "unknown-" + "f" * 16, "returned")]
    assert cart.state.mode == "available"
    cart.hold(BO_REVOKED, after=1)
    cart.feed(Tick(), after=POLICY.idle_timeout_s)
    assert kinds(cart.present(BO_REVOKED, after=1).events) == [("tap_rejected", None, "revoked")]


def test_a_reauth_after_a_break_glass_session_is_an_ordinary_one() -> None:
    cart = in_use_by_ana(agent=require_confirmed())
    cart.hold(BO, after=10)
    cart.feed(Tick(), after=POLICY.idle_timeout_s)
    reauth = cart.present(BO, after=1)
    assert kinds(reauth.events) == [("reauth", "bo", None)]
    assert not cart.state.break_glass_session
    assert kinds(cart.feed(Revoked("bo"), after=1).events)[0] == ("forced_logoff", "bo", "revoked")


# The idle warning the agent shows


def test_the_warning_is_due_before_the_idle_lock_and_activity_withdraws_it() -> None:
    cart = in_use_by_ana()
    lock_at = cart.now + POLICY.idle_timeout_s
    warn_at = idle_warning_due(cart.state, POLICY)
    assert warn_at == lock_at - 30
    assert cart.feed(WarnIdle(), after=1).state.warned_lock_at == lock_at, "the shell decides when it is due"
    assert state_summary(cart.state)["idle_lock_at"] is not None
    assert idle_warning_due(cart.state, POLICY) is None, "warned once per lock"
    cart.feed(Activity(), after=5)
    assert cart.state.warned_lock_at is None and state_summary(cart.state)["idle_lock_at"] is None
    assert idle_warning_due(cart.state, POLICY) == cart.now + POLICY.idle_timeout_s - 30
    cart.feed(WarnIdle(), after=POLICY.idle_timeout_s - 30)
    locked = cart.feed(Tick(), after=30)
    assert kinds(locked.events) == [("forced_logoff", "ana", "idle_timeout")]
    assert cart.state.warned_lock_at is None


def test_no_warning_without_a_live_session_or_when_the_session_limit_comes_first() -> None:
    cart = Cart(POLICY)
    assert idle_warning_due(cart.state, POLICY) is None
    assert cart.feed(WarnIdle()).ignored == "no_warning_due"
    short = Cart(replace(POLICY, max_session_s=100))
    short.present(ANA)
    assert idle_warning_due(short.state, short.policy) is None


# Properties

STAFF = ["ana", "bo", "cy"]
LIMITED = replace(POLICY, idle_timeout_s=30, max_session_s=100, break_glass_unknown=True)


def _tap(staff: str, revoked: bool, unknown: bool, role: str) -> Tap:
    return Tap("nfc:usb", f"ref-{staff}", None if unknown else staff, revoked=revoked, role=None if unknown else role)


taps = st.builds(
    _tap, st.sampled_from(STAFF), st.booleans(), st.sampled_from([False, False, True]), st.sampled_from(["RN", "MD"])
)
inputs: st.SearchStrategy[Input] = st.one_of(
    taps,
    taps.map(held),
    st.builds(lambda s: Lift("nfc:usb", f"ref-{s}"), st.sampled_from(STAFF)),
    st.just(Tick()),
    st.just(Activity()),
    st.just(WarnIdle()),
    st.builds(Revoked, st.sampled_from(STAFF)),
    st.builds(HolderRole, st.sampled_from(STAFF), st.sampled_from(["RN", "MD"])),
    st.builds(SetMaintenance, st.booleans()),
)
delays = st.sampled_from([0.0, 1.0, 10.0, 40.0, 86400.0, 10 * 86400.0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(inputs, delays), max_size=50))
def test_break_glass_is_always_declared_counted_and_within_the_limit(sequence: list[tuple[Input, float]]) -> None:
    ids = itertools.count()
    now, state = 0.0, initial_state(0.0)
    granted: list[tuple[str, float]] = []
    for event_input, delay in sequence:
        now += delay
        outcome = step(state, event_input, now, LIMITED, lambda: f"id{next(ids)}")
        events = outcome.events
        for index, event in enumerate(events):
            if event.type == "break_glass":
                assert event.staff_id is not None
                checkout = events[index + 1]
                assert checkout.type == "checkout" and checkout.break_glass
                assert (checkout.staff_id, checkout.session_id) == (event.staff_id, event.session_id)
                granted.append((event.staff_id, now))
            elif event.type == "checkout":
                assert event.break_glass == (index > 0 and events[index - 1].type == "break_glass")
        state = outcome.state
        for staff, at in granted:
            window = [t for s, t in granted if s == staff and at - BREAK_GLASS_WINDOW_S < t <= at]
            assert len(window) <= LIMITED.break_glass_per_30d
        assert state.break_glass_session == (
            state.mode == "in_use" and state.custody is not None and state.custody.break_glass
        )
        assert state.warned_lock_at is None or state.mode == "in_use"
        assert state_from_dict(state_to_dict(state)) == state
