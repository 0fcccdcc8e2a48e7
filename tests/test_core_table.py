"""Every row of the appliance's state table, driven through the pure core with an injected clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from handoff.core.inputs import Activity, ForceLogoff, Lift, Restart, Revoked, SetMaintenance, Tap, Tick
from handoff.core.machine import IGNORED_PRESENT, IGNORED_RETAP, next_deadline, step
from tests.kit.core import POLICY, Cart, kinds, tap


def checked_out(staff: str = "A") -> Cart:
    cart = Cart()
    cart.tap_and_lift(staff)
    return cart


def test_available_tap_by_valid_badge_checks_out() -> None:
    cart = Cart()
    outcome = cart.tap_and_lift("A")
    assert kinds(outcome.events) == [("checkout", "A", None)]
    assert cart.state.mode == "in_use" and cart.state.custody and cart.state.custody.staff_id == "A"
    assert outcome.events[0].session_id == cart.state.live_session_id
    assert outcome.events[0].previous_staff_id is None and outcome.events[0].reader == "nfc:usb"


def test_holder_tap_after_guard_checks_in() -> None:
    cart = checked_out()
    outcome = cart.tap_and_lift("A", after=POLICY.retap_guard_s)
    assert kinds(outcome.events) == [("checkin", "A", "returned")]
    assert cart.state.mode == "available" and cart.state.custody is None


def test_holder_tap_within_guard_is_ignored() -> None:
    cart = checked_out()
    outcome = cart.tap_and_lift("A", after=POLICY.retap_guard_s - 0.1)
    assert outcome.events == () and outcome.ignored == IGNORED_RETAP
    assert cart.state.mode == "in_use"


def test_zero_guard_checks_in_at_once() -> None:
    cart = Cart()
    policy = replace(POLICY, retap_guard_s=0)
    state = step(cart.state, tap("A"), 0.0, policy, cart.new_id).state
    state = step(state, Lift("nfc:usb", "ref-A"), 0.0, policy, cart.new_id).state
    assert [e.type for e in step(state, tap("A"), 0.0, policy, cart.new_id).events] == ["checkin"]


def test_other_badge_while_in_use_is_a_handoff() -> None:
    cart = checked_out()
    first_session = cart.state.live_session_id
    outcome = cart.tap_and_lift("B", after=0.5)
    assert kinds(outcome.events) == [
        ("forced_logoff", "A", "handoff"),
        ("checkin", "A", "handoff"),
        ("checkout", "B", None),
    ]
    assert len({e.handoff_id for e in outcome.events}) == 1
    assert outcome.events[0].session_id == first_session
    assert outcome.events[2].previous_staff_id == "A"
    assert outcome.events[2].session_id == cart.state.live_session_id != first_session


def test_idle_timeout_locks() -> None:
    cart = checked_out()
    assert next_deadline(cart.state, POLICY) == cart.now + POLICY.idle_timeout_s
    assert cart.feed(Tick(), after=POLICY.idle_timeout_s - 0.001).events == ()
    outcome = cart.feed(Tick(), after=0.001)
    assert kinds(outcome.events) == [("forced_logoff", "A", "idle_timeout")]
    assert cart.state.mode == "locked" and cart.state.live_session_id is None


def test_activity_postpones_idle_lock() -> None:
    cart = checked_out()
    cart.feed(Activity(), after=POLICY.idle_timeout_s - 1)
    assert cart.feed(Tick(), after=2).events == ()
    assert cart.state.mode == "in_use"


def test_max_session_locks_despite_activity() -> None:
    cart = checked_out()
    for _ in range(int(POLICY.max_session_s // 200) - 1):
        assert cart.feed(Activity(), after=200).events == ()
    outcome = cart.feed(Tick(), after=200)
    assert kinds(outcome.events) == [("forced_logoff", "A", "max_session")]


def test_locked_holder_tap_reauths_with_new_session() -> None:
    cart = checked_out()
    cart.feed(Tick(), after=POLICY.idle_timeout_s)
    old_session = cart.state.custody.session_id if cart.state.custody else None
    outcome = cart.tap_and_lift("A", after=1)
    assert kinds(outcome.events) == [("reauth", "A", None)]
    assert cart.state.mode == "in_use" and cart.state.live_session_id not in (None, old_session)


def test_locked_other_badge_is_handoff_without_logoff() -> None:
    cart = checked_out()
    cart.feed(Tick(), after=POLICY.idle_timeout_s)
    outcome = cart.tap_and_lift("B", after=1)
    assert kinds(outcome.events) == [("checkin", "A", "handoff"), ("checkout", "B", None)]
    assert outcome.events[0].handoff_id == outcome.events[1].handoff_id
    assert outcome.events[1].previous_staff_id == "A"


def test_locked_too_long_is_abandoned() -> None:
    cart = checked_out()
    cart.feed(Tick(), after=POLICY.idle_timeout_s)
    outcome = cart.feed(Tick(), after=POLICY.custody_timeout_s)
    assert kinds(outcome.events) == [("checkin", "A", "abandoned")]
    assert cart.state.mode == "available"


def test_late_tick_fires_timers_in_order() -> None:
    cart = checked_out()
    outcome = cart.feed(Tick(), after=POLICY.custody_timeout_s + 10)
    assert kinds(outcome.events) == [("forced_logoff", "A", "idle_timeout"), ("checkin", "A", "abandoned")]


def test_restart_while_in_use_forces_logoff() -> None:
    cart = checked_out()
    outcome = cart.feed(Restart(), after=5)
    assert kinds(outcome.events) == [("forced_logoff", "A", "restart")]
    assert cart.state.mode == "locked"
    assert cart.feed(Restart(), after=5).events == ()


@pytest.mark.parametrize(("revoked", "reason"), [(False, "unknown_badge"), (True, "revoked")])
@pytest.mark.parametrize("setup", ["available", "in_use", "locked"])
def test_unknown_or_revoked_badge_is_rejected_without_change(setup: str, revoked: bool, reason: str) -> None:
    cart = Cart() if setup == "available" else checked_out()
    if setup == "locked":
        cart.feed(Tick(), after=POLICY.idle_timeout_s)
    before = cart.state
    outcome = cart.feed(tap(None if not revoked else "X", revoked=revoked), after=1)
    assert kinds(outcome.events) == [("tap_rejected", None, reason)]
    assert outcome.events[0].badge_ref == ("ref-X" if revoked else "ref-None")
    assert (cart.state.mode, cart.state.custody) == (before.mode, before.custody)


def test_revocation_while_in_use_logs_off_and_checks_in() -> None:
    cart = checked_out()
    outcome = cart.feed(Revoked("A"), after=1)
    assert kinds(outcome.events) == [("forced_logoff", "A", "revoked"), ("checkin", "A", "revoked")]
    assert len({e.handoff_id for e in outcome.events}) == 1
    assert cart.state.mode == "available"


def test_revocation_while_locked_checks_in() -> None:
    cart = checked_out()
    cart.feed(Tick(), after=POLICY.idle_timeout_s)
    outcome = cart.feed(Revoked("A"), after=1)
    assert kinds(outcome.events) == [("checkin", "A", "revoked")]


def test_revocation_of_someone_else_changes_nothing() -> None:
    cart = checked_out()
    assert cart.feed(Revoked("B")).events == ()
    assert cart.state.mode == "in_use"


def test_badge_resting_on_reader_is_one_tap() -> None:
    cart = Cart()
    assert kinds(cart.feed(tap("A")).events) == [("checkout", "A", None)]
    assert cart.feed(tap("A"), after=60).ignored == IGNORED_PRESENT
    cart.feed(Lift("nfc:usb", "ref-A"), after=1)
    assert kinds(cart.feed(tap("A"), after=1).events) == [("checkin", "A", "returned")]


def test_same_badge_on_two_readers_counts_per_reader() -> None:
    cart = Cart()
    cart.feed(tap("A", reader="nfc:usb"))
    assert cart.feed(tap("A", reader="pcsc:Virtual PCD 00 00"), after=3).events[0].type == "checkin"


def test_second_badge_of_same_person_is_the_same_holder() -> None:
    cart = checked_out()
    outcome = cart.tap_and_lift("A", ref="ref-A-spare", after=5)
    assert kinds(outcome.events) == [("checkin", "A", "returned")]


def test_remote_force_logoff_locks() -> None:
    cart = checked_out()
    assert kinds(cart.feed(ForceLogoff(), after=1).events) == [("forced_logoff", "A", "remote")]
    assert cart.state.mode == "locked"
    assert cart.feed(ForceLogoff()).ignored == "no_live_session"


def test_maintenance_ends_custody_and_refuses_taps() -> None:
    cart = checked_out()
    outcome = cart.feed(SetMaintenance(on=True), after=1)
    assert kinds(outcome.events) == [("forced_logoff", "A", "maintenance"), ("checkin", "A", "maintenance")]
    assert cart.state.mode == "maintenance"
    assert kinds(cart.tap_and_lift("B", after=1).events) == [("tap_rejected", None, "maintenance")]
    assert next_deadline(cart.state, POLICY) is None
    cart.feed(SetMaintenance(on=False), after=1)
    assert cart.state.mode == "available"
    assert kinds(cart.tap_and_lift("B", after=1).events) == [("checkout", "B", None)]


def test_reader_level_rejection_keeps_its_reason() -> None:
    cart = checked_out()
    rejected = Tap(reader="pcsc:x", badge_ref=None, staff_id=None, rejection="piv_signature")
    assert kinds(cart.feed(rejected).events) == [("tap_rejected", None, "piv_signature")]
    assert cart.state.mode == "in_use"


def test_holders_card_pulled_from_a_locking_reader_locks_and_reinserting_reauths() -> None:
    cart = Cart()
    card = tap("A", reader="pcsc:contact")
    cart.feed(card)
    assert kinds(cart.feed(Lift("pcsc:contact", "ref-A", card_pulled=True), after=5).events) == [
        ("forced_logoff", "A", "card_removed")
    ]
    assert cart.state.mode == "locked"
    assert kinds(cart.feed(tap("A", reader="pcsc:contact"), after=1).events) == [("reauth", "A", None)]


def test_only_the_holders_card_pulled_from_a_locking_reader_locks() -> None:
    cart = checked_out()
    other = tap("B", reader="pcsc:contact", ref="ref-B2")
    assert cart.feed(Lift(other.reader, "ref-B2", card_pulled=True)).events == ()
    assert cart.feed(Lift("nfc:usb", "ref-A")).events == () and cart.state.mode == "in_use"
