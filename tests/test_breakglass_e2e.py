"""Break-glass and role change through the real `handoff run`, simulated NFC badges and mosquitto.

A badge held on the reader past `policy.break_glass_hold_s` asks for emergency access; the
directory changes come as a CSV import from another process and as a signed `cmd/directory`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt import publish

from handoff.audit.keys import public_pem
from handoff.badge_ref import load_secret
from handoff.commands.signing import sign_command
from handoff.timefmt import rfc3339
from tests.asyncapi_schemas import validate_event, validator
from tests.kit.appliance import ANA, BO, CY, HOLD_S, STRANGER, WITH_CY, Running
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.config import DEVICE, PREFIX, Layout

Kinds = list[tuple[str, str | None, str | None]]


class Cart(Running):
    def events_of(self, count: int) -> list[dict[str, Any]]:
        messages = self.events.wait_for_count(lambda m: "/events/" in m.topic, count)
        return [m.json() for m in messages]

    def kinds(self, count: int) -> Kinds:
        return [
            (e["type"].removeprefix("org.handoff."), e["data"]["staff_id"], e["data"]["reason"])
            for e in self.events_of(count)
        ]

    def barrier(self) -> None:
        """Return once the loop has looked at the directory since this call: a command makes it
        look right after that command's wake, and the loop serves one item at a time, so the
        answer to a second command comes after that look."""
        for _ in range(2):
            assert self.command("activity")["ok"]

    def state(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        message = self.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and predicate(m.json()))
        state: dict[str, Any] = message.json()
        validator("state").validate(state)
        return state

    def command(self, name: str, key: Ed25519PrivateKey | None = None, **fields: object) -> dict[str, Any]:
        body = sign_command(
            key or self.command_key,
            DEVICE,
            name,
            {"id": str(uuid.uuid4()), "issued_at": rfc3339(time.time()), **fields},
        )
        publish.single(f"{PREFIX}/cmd/{name}", json.dumps(body), qos=1, hostname="127.0.0.1", port=self.broker_port)
        answer = self.events.wait_for(lambda m: m.topic == f"{PREFIX}/cmd_result" and m.json()["id"] == body["id"])
        result: dict[str, Any] = answer.json()
        return result


def _policy(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("policy")
    return {"retap_guard_s": 0.5, "break_glass_hold_s": HOLD_S, **(marker.args[0] if marker else {})}


@pytest.fixture
def cart(appliance: Layout, cli: CliRunner, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cart]:
    broker = Broker(tmp_path / "broker")
    broker.start()
    agent = None
    if request.node.get_closest_marker("require_confirmed"):
        keys = tmp_path / "agents.pem"
        keys.write_bytes(public_pem(Ed25519PrivateKey.generate()))
        agent = {"keys_file": str(keys), "confirm_s": 30, "require_confirmed": True}
    running = Cart(appliance, broker, cli, _policy(request), agent=agent, directory=WITH_CY)
    yield running
    if running.process is not None:
        running.stop()
    running.events.close()
    broker.stop()


def test_a_revoked_badge_held_on_the_reader_gets_the_device_and_a_quick_tap_does_not(cart: Cart) -> None:
    cart.tap(CY)
    cart.tap(CY, hold=HOLD_S + 1)
    assert cart.kinds(4) == [
        ("tap_rejected", None, "revoked"),
        ("tap_rejected", None, "revoked"),
        ("break_glass", "cy", "revoked"),
        ("checkout", "cy", None),
    ]
    events = cart.events_of(4)
    declared, checkout = events[2], events[3]
    assert checkout["data"]["break_glass"] is True and declared["data"]["session_id"] == checkout["data"]["session_id"]
    assert declared["data"]["handoff_id"] == checkout["data"]["handoff_id"]
    for event in events:
        validate_event(event)
    state = cart.state(lambda s: s["state"] == "in_use")
    assert state["break_glass"] is True and state["staff_id"] == "cy"
    assert CY not in json.dumps(events).upper()


def test_break_glass_takes_the_device_from_its_holder_as_a_handoff(cart: Cart) -> None:
    cart.tap(ANA)
    cart.kinds(1)
    cart.tap(CY, hold=HOLD_S + 1)
    assert cart.kinds(6)[1:] == [
        ("tap_rejected", None, "revoked"),
        ("forced_logoff", "ana", "handoff"),
        ("checkin", "ana", "handoff"),
        ("break_glass", "cy", "revoked"),
        ("checkout", "cy", None),
    ]
    assert cart.events_of(6)[-1]["data"]["previous_staff_id"] == "ana"


def test_a_revocation_does_not_end_the_break_glass_session(cart: Cart) -> None:
    cart.tap(CY, hold=HOLD_S + 1)
    cart.kinds(3)
    assert cart.cli("badges", "revoke", "cy", "-c", cart.appliance.config).returncode == 0
    cart.barrier()
    time.sleep(0.6)  # past retap_guard_s, which no event marks
    cart.tap(CY)
    assert cart.kinds(4)[3] == ("checkin", "cy", "returned"), "the session outlived the revocation"


def test_an_unknown_badge_is_refused_break_glass_by_default(cart: Cart) -> None:
    cart.tap(STRANGER, hold=HOLD_S + 1)
    cart.tap(ANA)
    assert cart.kinds(3) == [
        ("tap_rejected", None, "unknown_badge"),
        ("tap_rejected", None, "break_glass_unknown_badge"),
        ("checkout", "ana", None),
    ]
    assert cart.events_of(3)[2]["data"]["previous_staff_id"] is None, "the stranger never held the device"


@pytest.mark.policy({"break_glass_unknown": True})
def test_an_unknown_badge_breaks_the_glass_when_the_policy_allows_it(cart: Cart) -> None:
    cart.tap(STRANGER, hold=HOLD_S + 1)
    kinds = cart.kinds(3)
    assert [k[0] for k in kinds] == ["tap_rejected", "break_glass", "checkout"]
    staff = kinds[1][1]
    assert staff is not None and staff.startswith("unknown-") and kinds[1][2] == "unknown_badge"


@pytest.mark.require_confirmed
def test_a_badge_held_while_the_previous_logoff_waits_for_its_receipt_breaks_the_glass(cart: Cart) -> None:
    cart.tap(ANA)
    cart.kinds(1)
    cart.tap(BO, hold=HOLD_S + 1)
    assert cart.kinds(5)[1:] == [
        ("forced_logoff", "ana", "handoff"),
        ("checkin", "ana", "handoff"),
        ("break_glass", "bo", "previous_session_open"),
        ("checkout", "bo", None),
    ]
    checkout = cart.events_of(5)[-1]["data"]
    assert checkout["previous_logoff"] == "pending" and checkout["break_glass"] is True


@pytest.mark.policy({"break_glass_per_30d": 1})
def test_the_limit_is_counted_durably_and_refuses_the_next_use_after_a_restart(cart: Cart) -> None:
    cart.tap(CY, hold=HOLD_S + 1)
    cart.kinds(3)
    cart.tap(ANA)
    assert [k[0] for k in cart.kinds(6)[3:]] == ["forced_logoff", "checkin", "checkout"]
    code, _ = cart.stop()
    assert code == 0
    cart.start()
    cart.kinds(7)
    cart.tap(CY, hold=HOLD_S + 1)
    cart.tap(ANA)
    assert cart.kinds(10)[7:] == [
        ("tap_rejected", None, "revoked"),
        ("tap_rejected", None, "break_glass_limit"),
        ("reauth", "ana", None),
    ]


def test_a_new_role_in_an_imported_csv_ends_the_holders_session(cart: Cart) -> None:
    cart.tap(ANA)
    cart.kinds(1)
    csv = cart.appliance.root / "promoted.csv"
    csv.write_text(WITH_CY.replace("Ana Diaz,RN", "Ana Diaz,MD"))
    assert cart.cli("badges", "import", csv, "-c", cart.appliance.config).returncode == 0
    assert cart.kinds(2)[1] == ("forced_logoff", "ana", "role_changed")
    assert cart.state(lambda s: s["seq"] == 2)["state"] == "locked"
    cart.tap(ANA)
    assert cart.kinds(3)[2] == ("reauth", "ana", None)
    assert cart.cli("badges", "import", csv, "-c", cart.appliance.config).returncode == 0
    cart.barrier()
    time.sleep(0.6)  # past retap_guard_s, which no event marks
    cart.tap(ANA)
    assert cart.kinds(4)[3] == ("checkin", "ana", "returned"), "the same role again ends nothing"


def test_a_signed_directory_command_that_changes_the_role_ends_the_session_and_a_forged_one_does_not(
    cart: Cart,
) -> None:
    secret = load_secret(cart.appliance.secret)

    def directory(role: str) -> list[dict[str, Any]]:
        entries = [(ANA, "ana", role, False), (BO, "bo", "MD", False), (CY, "cy", "RN", True)]
        return [
            {"badge_ref": secret.ref(bytes.fromhex(uid)), "staff_id": staff, "name": staff, "role": r, "revoked": rev}
            for uid, staff, r, rev in entries
        ]

    cart.tap(ANA)
    cart.kinds(1)
    forged = cart.command("directory", Ed25519PrivateKey.generate(), version=5, badges=directory("MD"))
    assert forged["error"] == "bad_signature"
    cart.barrier()
    time.sleep(0.6)  # past retap_guard_s, which no event marks
    cart.tap(ANA)
    assert cart.kinds(2)[1] == ("checkin", "ana", "returned"), "the forged directory ended nothing"
    cart.tap(ANA)
    assert cart.kinds(3)[2] == ("checkout", "ana", None)
    assert cart.command("directory", version=6, badges=directory("MD"))["ok"]
    assert cart.kinds(4)[3] == ("forced_logoff", "ana", "role_changed")
