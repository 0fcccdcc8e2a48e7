"""The receipt rows of the state machine and the agent's rules (docs/agent.md), driven through the pure core."""

from __future__ import annotations

from handoff.core.codec import state_from_dict, state_to_dict
from handoff.core.inputs import ForceLogoff, Receipt, SetMaintenance, Tick
from handoff.core.machine import AWAITING_RECEIPT, next_deadline
from handoff.core.policy import AgentPolicy
from handoff.core.state import shifted
from tests.kit.core import POLICY, Cart, kinds

CONFIRM_S = 10.0


def agent(*, require: bool = False) -> AgentPolicy:
    return AgentPolicy(confirm_s=CONFIRM_S, require_confirmed=require)


def with_agent(*, require: bool = False) -> Cart:
    cart = Cart(agent=agent(require=require))
    cart.tap_and_lift("A")
    return cart


def test_without_an_agent_nothing_waits_and_checkouts_carry_null() -> None:
    cart = Cart()
    cart.tap_and_lift("A")
    outcome = cart.tap_and_lift("B", after=5)
    assert [e.previous_logoff for e in outcome.events if e.type == "checkout"] == [None]
    assert cart.state.ends == () and next_deadline(cart.state, POLICY) == cart.now + POLICY.idle_timeout_s


def test_a_receipt_confirms_the_session_end_it_names_under_its_handoff() -> None:
    cart = with_agent()
    assert cart.state.last_logoff is None
    returned = cart.tap_and_lift("A", after=5).events[0]
    assert cart.state.last_logoff == "pending"
    assert next_deadline(cart.state, POLICY, cart.agent) == cart.now + CONFIRM_S
    confirmed = cart.feed(Receipt(returned.id, done=True), after=1).events
    assert kinds(confirmed) == [("logoff_confirmed", "A", None)]
    assert confirmed[0].for_id == returned.id and confirmed[0].handoff_id == returned.handoff_id
    assert confirmed[0].session_id == returned.session_id
    assert [e.previous_logoff for e in cart.tap_and_lift("B", after=1).events] == ["confirmed"]


def test_no_receipt_in_time_is_unconfirmed_and_a_late_one_still_confirms() -> None:
    cart = with_agent()
    logoff = cart.feed(ForceLogoff(), after=5).events[0]
    assert cart.feed(Tick(), after=CONFIRM_S - 0.1).events == ()
    timed_out = cart.feed(Tick(), after=0.1).events
    assert kinds(timed_out) == [("logoff_unconfirmed", "A", "timeout")] and timed_out[0].for_id == logoff.id
    assert cart.state.unconfirmed_warning and cart.state.last_logoff == "unconfirmed"
    late = cart.feed(Receipt(logoff.id, done=True), after=600).events
    assert kinds(late) == [("logoff_confirmed", "A", None)]
    assert not cart.state.unconfirmed_warning and cart.state.ends == ()


def test_a_failed_receipt_is_unconfirmed_once_and_odd_receipts_change_nothing() -> None:
    cart = with_agent()
    logoff = cart.feed(ForceLogoff(), after=5).events[0]
    failed = cart.feed(Receipt(logoff.id, done=False), after=1).events
    assert kinds(failed) == [("logoff_unconfirmed", "A", "failed")]
    again = cart.feed(Receipt(logoff.id, done=False), after=1)
    assert again.events == () and again.ignored == "already_answered"
    assert cart.feed(Receipt("no-such-event", done=True)).ignored == "unknown_event"
    cart.feed(Receipt(logoff.id, done=True))
    replayed = cart.feed(Receipt(logoff.id, done=True))
    assert replayed.events == () and replayed.ignored == "unknown_event"


def test_without_require_confirmed_a_handoff_goes_through_and_says_pending() -> None:
    cart = with_agent()
    events = cart.tap_and_lift("B", after=5).events
    assert kinds(events) == [("forced_logoff", "A", "handoff"), ("checkin", "A", "handoff"), ("checkout", "B", None)]
    assert events[-1].previous_logoff == "pending"


def test_the_amber_stays_until_that_or_a_later_session_end_is_confirmed() -> None:
    cart = with_agent()
    first = cart.feed(ForceLogoff(), after=5).events[0]
    cart.feed(Tick(), after=CONFIRM_S)
    cart.tap_and_lift("A", after=1)
    second = cart.tap_and_lift("A", after=5).events[0]
    assert cart.state.unconfirmed_warning, "a pending later end does not clear it"
    cart.feed(Receipt(second.id, done=True), after=1)
    assert not cart.state.unconfirmed_warning
    assert kinds(cart.feed(Receipt(first.id, done=True)).events) == [("logoff_confirmed", "A", None)]
    assert not cart.state.unconfirmed_warning


def test_require_confirmed_completes_the_handoff_when_the_receipt_comes() -> None:
    cart = with_agent(require=True)
    logoff = cart.tap_and_lift("B", after=5).events
    assert kinds(logoff) == [("forced_logoff", "A", "handoff")]
    assert cart.state.mode == "locked" and cart.state.custody and cart.state.custody.staff_id == "A"
    done = cart.feed(Receipt(logoff[0].id, done=True), after=2).events
    assert kinds(done) == [("logoff_confirmed", "A", None), ("checkin", "A", "handoff"), ("checkout", "B", None)]
    assert {e.handoff_id for e in done} == {logoff[0].handoff_id}
    assert done[-1].previous_staff_id == "A" and done[-1].previous_logoff == "confirmed"
    assert cart.state.mode == "in_use" and cart.state.custody and cart.state.custody.staff_id == "B"


def test_require_confirmed_refuses_when_no_receipt_comes_and_the_holder_keeps_custody() -> None:
    cart = with_agent(require=True)
    logoff = cart.tap_and_lift("B", after=5).events[0]
    refused = cart.feed(Tick(), after=CONFIRM_S).events
    assert kinds(refused) == [("logoff_unconfirmed", "A", "timeout"), ("tap_rejected", None, "previous_session_open")]
    assert refused[1].badge_ref == "ref-B"
    assert cart.state.mode == "locked" and cart.state.custody and cart.state.custody.staff_id == "A"
    assert kinds(cart.tap_and_lift("C", after=1).events) == [("tap_rejected", None, "previous_session_open")]
    assert kinds(cart.tap_and_lift("A", after=1).events) == [("reauth", "A", None)]
    assert kinds(cart.feed(Receipt(logoff.id, done=True)).events) == [("logoff_confirmed", "A", None)]


def test_require_confirmed_a_badge_waits_for_a_pending_return_and_others_are_refused() -> None:
    cart = with_agent(require=True)
    returned = cart.tap_and_lift("A", after=5).events[0]
    waiting = cart.tap_and_lift("B", after=1)
    assert waiting.events == () and waiting.ignored == AWAITING_RECEIPT
    assert kinds(cart.tap_and_lift("C", after=1).events) == [("tap_rejected", None, "previous_session_open")]
    done = cart.feed(Receipt(returned.id, done=True), after=1).events
    assert kinds(done) == [("logoff_confirmed", "A", None), ("checkout", "B", None)]
    assert done[-1].previous_logoff == "confirmed" and done[-1].handoff_id == returned.handoff_id


def test_require_confirmed_still_lets_maintenance_through() -> None:
    cart = with_agent(require=True)
    cart.tap_and_lift("B", after=5)
    events = cart.feed(SetMaintenance(True), after=1).events
    assert kinds(events) == [("checkin", "A", "maintenance")] and cart.state.waiting is None


def test_waiting_receipts_survive_a_restart_in_wall_clock_time() -> None:
    cart = with_agent(require=True)
    cart.tap_and_lift("B", after=5)
    saved = state_from_dict(state_to_dict(shifted(cart.state, 1_000_000.0)))
    assert shifted(saved, -1_000_000.0) == cart.state
