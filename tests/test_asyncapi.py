"""docs/asyncapi.yaml describes what the code emits: every event type and reason, state, status."""

from __future__ import annotations

import itertools
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import db
from handoff.audit.checkpoint import make_checkpoint
from handoff.cloudevents import CONTENT_TYPE, EventContext, source, uuid7
from handoff.core.codec import state_summary
from handoff.core.events import (
    BREAK_GLASS_REASONS,
    CHECKIN_REASONS,
    FORCED_LOGOFF_REASONS,
    REJECTION_REASONS,
    UNCONFIRMED_REASONS,
    Event,
)
from handoff.core.inputs import (
    Activity,
    BreakGlass,
    ForceLogoff,
    HolderRole,
    Input,
    Lift,
    Receipt,
    Restart,
    Revoked,
    SetMaintenance,
    Tap,
    Tick,
)
from handoff.core.machine import step
from handoff.core.policy import AgentPolicy, Policy
from handoff.core.state import initial_state
from handoff.store import Store
from tests.asyncapi_schemas import document, validate_event, validator
from tests.kit.core import Cart

POLICY = Policy(
    idle_timeout_s=10,
    max_session_s=25,
    custody_timeout_s=100,
    retap_guard_s=1,
    break_glass_hold_s=3.0,
    break_glass_unknown=False,
    break_glass_per_30d=2,
)
CONTEXT = EventContext("st-elsewhere", "WOW-3N-07", "rdr-0042", clock_synced=True)


def tap(staff: str | None, ref: str, **kwargs: Any) -> list[Input]:
    badge_ref = ref * 64 if ref else None
    return [Tap("nfc:usb", badge_ref, staff, **kwargs), *([Lift("nfc:usb", badge_ref)] if badge_ref else [])]


def scenario_events() -> list[Event]:
    """A shift that makes every event type with every reason the core knows."""
    script: list[tuple[float, list[Input]]] = [
        (0, tap("ana", "a")),
        (2, tap("ana", "a")),
        (3, tap("ana", "a")),
        (1, tap("bo", "b")),
        (11, [Tick()]),
        (1, tap("bo", "b")),
        (9, tap("bo", "b")),
        (9, tap("bo", "b")),
        (9, [Tick()]),
        (100, [Tick()]),
        (1, tap("ana", "a")),
        (1, [Restart()]),
        (1, tap("ana", "a")),
        (1, [ForceLogoff()]),
        (1, tap("cy", "c")),
        (1, [Revoked("cy")]),
        (1, tap("ana", "a")),
        (1, [SetMaintenance(True)]),
        (1, tap("ana", "a")),
        (1, [SetMaintenance(False)]),
        (1, tap(None, "d")),
        (1, tap("eve", "e", revoked=True)),
        *[
            (1, [Tap("pcsc:x", None, None, rejection=reason)])
            for reason in REJECTION_REASONS[3:]
            if not reason.startswith("break_glass")
        ],
        (1, tap("fay", "f")),
        *[(8, [Activity()]) for _ in range(3)],
        (2, [Tick()]),
        (1, tap("fay", "f")),
        (1, tap("ana", "a")),
        (2, [Revoked("ana")]),
        (1, [Tap("pcsc:contact", "0" * 64, "gus"), Lift("pcsc:contact", "0" * 64, card_pulled=True)]),
        (1, [*tap("hal", "9", revoked=True), BreakGlass("nfc:usb", "9" * 64, "hal", revoked=True)]),
        (1, tap("jo", "8", role="RN")),
        (1, [HolderRole("jo", "MD")]),
        (1, [BreakGlass("nfc:usb", "9" * 64, "hal", revoked=True)]),
        (1, tap("jo", "8", role="MD")),
        (1, [BreakGlass("nfc:usb", "9" * 64, "hal", revoked=True)]),
        (1, [BreakGlass("nfc:usb", "7" * 64, None)]),
        (
            1,
            [
                Tap("pcsc:x", "6" * 64, "kim", rejection="piv_expired"),
                BreakGlass("pcsc:x", "6" * 64, "kim", expired=True),
            ],
        ),
    ]
    ids = itertools.count()
    state, now, events = initial_state(0), 1_800_000_000.0, []
    for delay, inputs in script:
        now += delay
        for event_input in inputs:
            outcome = step(state, event_input, now, POLICY, lambda: uuid7(1_800_000_000 + next(ids)))
            state = outcome.state
            events.extend(outcome.events)
    return events + agent_events()


def agent_events() -> list[Event]:
    """With an agent that must confirm: a return confirmed while the next badge waits, a
    handoff refused for want of a receipt and confirmed late, a logoff that failed."""
    cart = Cart(agent=AgentPolicy(confirm_s=5, require_confirmed=True))
    cart.new_id = lambda: uuid7(cart.now + next(cart.ids) / 1000)  # type: ignore[method-assign]
    made = [
        *cart.tap_and_lift("ana", ref="aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").events,
        *cart.tap_and_lift(
            "ana", ref="aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", after=3
        ).events,
    ]
    made += cart.tap_and_lift(
        "bo", ref="bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", after=1
    ).events
    made += cart.feed(Receipt(made[-1].id, done=True), after=1).events
    made += cart.tap_and_lift(
        "cy", ref="cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", after=1
    ).events
    handoff_logoff = made[-1]
    made += cart.feed(Tick(), after=6).events
    made += cart.feed(Receipt(handoff_logoff.id, done=True), after=1).events
    made += cart.tap_and_lift(
        "bo", ref="bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", after=1
    ).events
    made += cart.feed(ForceLogoff(), after=1).events
    made += cart.feed(Receipt(made[-1].id, done=False), after=1).events
    waits = Tap("nfc:usb", "d" * 64, "dee")
    made += cart.feed(waits, after=1).events
    made += cart.feed(BreakGlass("nfc:usb", "d" * 64, "dee"), after=3).events
    return made


def wire(events: list[Event]) -> list[dict[str, Any]]:
    """The events as the store numbers, chains and stores them for publishing."""
    with tempfile.TemporaryDirectory() as where:
        store = Store(db.connect(Path(where)))
        return [json.loads(stored.payload) for stored in store.commit(initial_state(0.0), events, CONTEXT)]


def test_a_checkpoint_matches_its_schema() -> None:
    events = wire(scenario_events())
    checkpoint = make_checkpoint(
        Ed25519PrivateKey.generate(),
        source("st-elsewhere", "rdr-0042"),
        "WOW-3N-07",
        3,
        events[2]["data"]["chain"],
        0.0,
    )
    validator("checkpoint").validate(checkpoint)


def test_scenario_covers_every_type_and_reason() -> None:
    seen = {(e.type, e.reason) for e in scenario_events()}
    assert {r for t, r in seen if t == "checkin"} == set(CHECKIN_REASONS)
    assert {r for t, r in seen if t == "forced_logoff"} == set(FORCED_LOGOFF_REASONS)
    assert {r for t, r in seen if t == "tap_rejected"} == set(REJECTION_REASONS)
    assert {r for t, r in seen if t == "logoff_unconfirmed"} == set(UNCONFIRMED_REASONS)
    assert {r for t, r in seen if t == "break_glass"} == set(BREAK_GLASS_REASONS) - {"unknown_badge"}
    assert {"checkout", "reauth", "logoff_confirmed"} <= {t for t, _ in seen}
    assert {e.break_glass for e in scenario_events() if e.type == "checkout"} == {False, True}
    assert {e.previous_logoff for e in scenario_events() if e.type == "checkout"} == {None, "confirmed", "unconfirmed"}


def test_every_emitted_event_matches_its_schema() -> None:
    for event in wire(scenario_events()):
        validate_event(event)


def test_reason_enums_are_the_cores() -> None:
    schemas = document()["components"]["schemas"]

    def reasons(name: str) -> set[str]:
        return set(schemas[name]["allOf"][1]["properties"]["data"]["properties"]["reason"]["enum"])

    assert reasons("checkin") == set(CHECKIN_REASONS)
    assert reasons("forced_logoff") == set(FORCED_LOGOFF_REASONS)
    assert reasons("tap_rejected") == set(REJECTION_REASONS)
    assert reasons("logoff_unconfirmed") == set(UNCONFIRMED_REASONS)
    assert reasons("break_glass") == set(BREAK_GLASS_REASONS)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda e: e["data"].pop("seq"),
        lambda e: e["data"].update(handoff_idd=e["data"].pop("handoff_id")),
        lambda e: e["data"].update(reason="retired"),
        lambda e: e.update(specversion="0.3"),
        lambda e: e["data"].update(badge_ref="04A1B2C3"),
        lambda e: e.update(time="last tuesday"),
        lambda e: e.update(time=e["time"].replace("Z", "+01:00")),
    ],
)
def test_schemas_reject_a_spoiled_event(spoil: Any) -> None:
    event = next(e for e in wire(scenario_events()) if e["type"] == "org.handoff.checkin")
    spoil(event)
    with pytest.raises(jsonschema.ValidationError):
        validate_event(event)


def test_state_summary_matches() -> None:
    events = scenario_events()
    state = initial_state(0)
    validator("state").validate({**state_summary(state), "seq": len(events)})
    with pytest.raises(jsonschema.ValidationError):
        validator("state").validate({**state_summary(state), "seq": len(events), "holder": "x"})
    with pytest.raises(jsonschema.ValidationError):
        validator("state").validate({**state_summary(state), "seq": len(events), "since": "yesterday"})


def test_every_reference_resolves_and_every_topic_variable_is_declared() -> None:
    doc = document()

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for value in node.values() for r in refs(value)]
        return [r for value in node for r in refs(value)] if isinstance(node, list) else []

    for ref in refs(doc):
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            assert part in target, ref
            target = target[part]
    for name, channel in doc["channels"].items():
        assert set(re.findall(r"{(\w+)}", channel["address"])) == set(channel["parameters"]), name


def test_bindings_say_what_spec_section_3_says() -> None:
    doc = document()
    mqtt = doc["servers"]["hospital"]["bindings"]["mqtt"]
    assert mqtt["cleanSession"] is False
    assert mqtt["lastWill"]["topic"] == doc["channels"]["status"]["address"] and mqtt["lastWill"]["retain"] is True
    retained = {name: op["bindings"]["mqtt"].get("retain", False) for name, op in doc["operations"].items()}
    assert retained == {
        "publishEvents": False,
        "publishState": True,
        "publishStatus": True,
        "publishCheckpoints": True,
        "receiveCommands": False,
        "receiveReceipts": False,
        "answerCommands": False,
    }
    assert {op["bindings"]["mqtt"]["qos"] for op in doc["operations"].values()} == {1}
    messages = doc["components"]["messages"]
    assert {messages[t]["contentType"] for t in ("checkout", "checkin", "forced_logoff", "reauth", "tap_rejected")} == {
        CONTENT_TYPE
    }
