"""Logoff receipts reaching a real `handoff run` through real mosquitto (docs/agent.md).

The receipts here are made and signed by the same code the agent uses (handoff.receipt)
and published as the agent publishes them; the agent process itself is not needed to show
what the appliance does with a receipt, a forged one, or none.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt import publish

from handoff.audit.keys import public_pem
from handoff.receipt import ActionOutcome, agent_source, make_receipt
from tests.kit.appliance import ANA, BO, Running, kinds
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.config import DEVICE, PREFIX, SITE, Layout

CONFIRM_S = 1.5
AGENT_KEY = Ed25519PrivateKey.generate()


def receipt(event: dict[str, Any], *, key: Ed25519PrivateKey = AGENT_KEY, done: bool = True) -> dict[str, Any]:
    return make_receipt(
        key,
        event=event,
        outcomes=[ActionOutcome("command", done, "" if done else "exit status 3")],
        source=agent_source(SITE, "ws-test"),
        receipt_id=str(uuid.uuid4()),
        now=time.time(),
    )


class Cart(Running):
    def published(self, count: int) -> list[dict[str, Any]]:
        """The first `count` events, in the order the broker delivered them."""
        return [m.json() for m in self.events.wait_for_count(lambda m: "/events/" in m.topic, count)]

    def send(self, body: dict[str, Any] | bytes) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body)
        publish.single(f"{PREFIX}/receipts", payload, qos=1, hostname="127.0.0.1", port=self.broker_port)


@pytest.fixture
def cart(appliance: Layout, cli: CliRunner, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cart]:
    keys = tmp_path / "agents.pem"
    keys.write_bytes(public_pem(Ed25519PrivateKey.generate()) + public_pem(AGENT_KEY))
    require = request.node.get_closest_marker("require_confirmed") is not None
    broker = Broker(tmp_path / "broker")
    broker.start()
    agent = {"keys_file": str(keys), "confirm_s": CONFIRM_S, "require_confirmed": require}
    running = Cart(appliance, broker, cli, {"retap_guard_s": 0.5}, agent=agent)
    yield running
    if running.process is not None:
        running.stop()
    running.events.close()
    broker.stop()


def test_a_valid_receipt_confirms_and_forged_or_replayed_ones_change_nothing(cart: Cart) -> None:
    cart.tap(ANA)
    time.sleep(0.6)
    cart.tap(ANA)
    checkout, checkin = cart.published(2)
    assert checkout["data"]["previous_logoff"] is None and checkin["data"]["reason"] == "returned"
    other_cart_agent = Ed25519PrivateKey.generate()
    """Another cart's agent: under a site-wide agents.pem it would confirm this cart's logoff."""
    cart.send(receipt(checkin, key=other_cart_agent))
    forged = receipt(checkin)
    forged["data"]["staff_id"] = "mallory"
    cart.send(forged)
    elsewhere = receipt({**checkin, "data": {**checkin["data"], "device_id": "WOW-9Z-99"}})
    cart.send(elsewhere)
    cart.send(b"not json at all")
    valid = receipt(checkin)
    cart.send(valid)
    confirmed = cart.published(3)[2]
    assert kinds([confirmed]) == [("logoff_confirmed", "ana", None)]
    assert (
        confirmed["data"]["for"] == checkin["id"] and confirmed["data"]["handoff_id"] == checkin["data"]["handoff_id"]
    )
    cart.send(valid)
    expected = {"bad_signature": 2, "wrong_device": 1, "malformed": 1, "accepted": 1, "unknown_event": 1}
    status = cart.events.wait_for(
        lambda m: m.topic == f"{PREFIX}/status" and m.json().get("receipts") == expected
    ).json()
    assert status["logoff"] == "confirmed"
    cart.tap(BO)
    assert cart.published(4)[3]["data"]["previous_logoff"] == "confirmed"
    time.sleep(0.5)
    assert sum("/events/" in m.topic for m in cart.events.snapshot()) == 4, "a replayed receipt made an event"


def test_no_receipt_is_unconfirmed_a_late_one_confirms_and_waiting_survives_a_restart(cart: Cart) -> None:
    cart.tap(ANA)
    cart.tap(BO)
    events = cart.published(4)
    assert kinds(events) == [
        ("checkout", "ana", None),
        ("forced_logoff", "ana", "handoff"),
        ("checkin", "ana", "handoff"),
        ("checkout", "bo", None),
    ]
    logoff = events[1]
    assert events[3]["data"]["previous_logoff"] == "pending"
    unconfirmed = cart.published(5)[4]
    assert kinds([unconfirmed]) == [("logoff_unconfirmed", "ana", "timeout")]
    assert (
        unconfirmed["data"]["for"] == logoff["id"] and unconfirmed["data"]["handoff_id"] == logoff["data"]["handoff_id"]
    )
    cart.stop()
    cart.start()
    cart.send(receipt(logoff))
    late = [e for e in cart.published(7) if e["type"] == "org.handoff.logoff_confirmed"]
    assert [e["data"]["for"] for e in late] == [logoff["id"]]


def test_a_receipt_saying_the_logoff_failed_is_unconfirmed_at_once(cart: Cart) -> None:
    cart.tap(ANA)
    time.sleep(0.6)
    cart.tap(ANA)
    checkin = cart.published(2)[1]
    cart.send(receipt(checkin, done=False))
    started = time.monotonic()
    failed = cart.published(3)[2]
    assert kinds([failed]) == [("logoff_unconfirmed", "ana", "failed")]
    assert time.monotonic() - started < CONFIRM_S


@pytest.mark.require_confirmed
def test_require_confirmed_completes_on_the_receipt_and_refuses_without_one(cart: Cart) -> None:
    cart.tap(ANA)
    cart.tap(BO)
    logoff = cart.published(2)[1]
    assert kinds([logoff]) == [("forced_logoff", "ana", "handoff")]
    cart.send(receipt(logoff))
    completed = cart.published(5)[2:]
    assert kinds(completed) == [
        ("logoff_confirmed", "ana", None),
        ("checkin", "ana", "handoff"),
        ("checkout", "bo", None),
    ]
    assert {e["data"]["handoff_id"] for e in completed} == {logoff["data"]["handoff_id"]}
    assert completed[2]["data"]["previous_logoff"] == "confirmed"
    cart.tap(ANA)
    refused = cart.published(8)[5:]
    assert kinds(refused) == [
        ("forced_logoff", "bo", "handoff"),
        ("logoff_unconfirmed", "bo", "timeout"),
        ("tap_rejected", None, "previous_session_open"),
    ]
    state = cart.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and m.json()["seq"] == 8).json()
    assert state["state"] == "locked" and state["staff_id"] == "bo"
    assert DEVICE in refused[0]["subject"]
