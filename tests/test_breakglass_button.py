"""The break-glass button and cue on the cart's pins: the appliance as `handoff run` builds it
(`runtime.wiring.build`), in this process so that gpiozero's MockFactory stands in for the Pi's
GPIO (the one part that cannot run here), with a real broker and simulated NFC badges."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from handoff.cloudevents import uuid7
from handoff.config import load_config
from handoff.errors import ConfigError
from handoff.feedback.board import load_board, parse_board
from handoff.feedback.cues import PATTERNS, Cue
from handoff.runtime.appliance import Stop
from handoff.runtime.wiring import Parts, build
from tests.kit import pcscd
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner
from tests.kit.collector import Collector
from tests.kit.config import PREFIX, Layout
from tests.kit.gpio import mock_pins
from tests.kit.net import free_udp_port
from tests.kit.piv_cards import PivCa, write_card

BOARD = load_board("pi-cart-v1")
REVOKED = "04C0FFEE"


class Cart:
    def __init__(self, parts: Parts, factory: MockFactory, nfc: str, events: Collector, cli: CliRunner) -> None:
        self.parts, self.factory, self.nfc, self.events, self.cli = parts, factory, nfc, events, cli

    def tap(self, uid: str) -> None:
        assert self.cli("sim", "tap", uid, "--device", self.nfc, "--hold", "0.2").returncode == 0

    def press(self) -> None:
        assert BOARD.button is not None
        button = self.factory.pin(BOARD.button)
        button.drive_low()
        button.drive_high()

    def types(self, count: int) -> list[tuple[str, str | None]]:
        found = self.events.wait_for_count(lambda m: "/events/" in m.topic, count)
        return [(m.json()["type"].removeprefix("org.handoff."), m.json()["data"]["reason"]) for m in found]

    def forget_outputs(self) -> None:
        for pin in BOARD.pins.values():
            self.factory.pin(pin).clear_states()

    def lit(self) -> list[tuple[float, frozenset[str]]]:
        """Every change of the outputs since `forget_outputs`: (when, what was lit from then on).

        MockPin keeps each change with the time since the pin's previous one: summed, they give
        times from the moment every pin was cleared together.
        """
        changes = []
        for name, pin in BOARD.pins.items():
            at = 0.0
            for state in self.factory.pin(pin).states[1:]:
                at += state.timestamp
                changes.append((at, name, bool(state.state)))
        lit: set[str] = set()
        history = []
        for at, name, on in sorted(changes):
            (lit.add if on else lit.discard)(name)
            history.append((at, frozenset(lit)))
        return history


@contextmanager
def running(
    appliance: Layout, cli: CliRunner, tmp_path: Path, reader: dict[str, Any], directory: str
) -> Iterator[tuple[Parts, MockFactory, Collector]]:
    broker = Broker(tmp_path / "broker")
    broker.start()
    appliance.configure(
        port=broker.port, readers=[reader], feedback={"board": "pi-cart-v1"}, policy={"break_glass_hold_s": 30}
    )
    csv = appliance.root / "badges.csv"
    csv.write_text(f"uid,staff_id,name,role,revoked\n{directory}")
    assert cli("badges", "import", csv, "-c", appliance.config).returncode == 0
    events = Collector(broker.port, f"{PREFIX}/#")
    try:
        with mock_pins() as factory:
            parts = build(load_config(appliance.config), new_id=lambda: uuid7(time.time()))
            runner = threading.Thread(target=parts.run, daemon=True)
            runner.start()
            try:
                events.wait_for(lambda m: m.topic == f"{PREFIX}/status" and m.json().get("status") == "online")
                yield parts, factory, events
            finally:
                parts.appliance.submit(Stop())
                runner.join(10)
    finally:
        events.close()
        broker.stop()


@pytest.fixture
def cart(appliance: Layout, cli: CliRunner, tmp_path: Path) -> Iterator[Cart]:
    nfc = f"udp:127.0.0.1:{free_udp_port()}"
    with running(appliance, cli, tmp_path, {"kind": "nfc", "path": nfc}, f"{REVOKED},cy,Cy Park,RN,true\n") as (
        parts,
        factory,
        events,
    ):
        yield Cart(parts, factory, nfc, events, cli)


def test_a_tap_after_the_button_breaks_the_glass_with_its_own_cue(cart: Cart) -> None:
    cart.tap(REVOKED)
    assert cart.types(1) == [("tap_rejected", "revoked")], "without the button a revoked badge is refused"
    time.sleep(sum(frame.seconds for frame in PATTERNS[Cue.REJECTED]))  # let the refusal's cue end
    cart.forget_outputs()
    cart.press()
    cart.tap(REVOKED)
    assert cart.types(4)[1:] == [("tap_rejected", "revoked"), ("break_glass", "revoked"), ("checkout", None)]
    cart.events.wait_for(lambda m: m.topic == f"{PREFIX}/state" and m.json()["break_glass"] is True)
    time.sleep(sum(frame.seconds for frame in PATTERNS[Cue.BREAK_GLASS]) + 0.2)  # the cue plays in full
    history = cart.lit()
    buzzer = [("buzzer" in lit) for _, lit in history]
    beeps = sum(1 for before, now in zip([False, *buzzer[:-1]], buzzer, strict=True) if now and not before)
    assert beeps == 3, "three beeps, and none of the refusal's two"
    assert any({"green", "red"} <= lit for _, lit in history), "green and red together: only break-glass shows that"
    assert history[-1][1] == frozenset({"green"}), "then the ambient light of a device in use"


def test_a_press_arms_only_the_next_tap(cart: Cart) -> None:
    cart.press()
    cart.tap(REVOKED)
    assert [kind for kind, _ in cart.types(3)] == ["tap_rejected", "break_glass", "checkout"]
    time.sleep(2.1)  # past retap_guard_s, which no event marks
    cart.tap(REVOKED)
    assert cart.types(4)[3] == ("checkin", "returned"), "the break-glass holder returns the device"
    cart.tap(REVOKED)
    assert cart.types(5)[4] == ("tap_rejected", "revoked"), "no press, no break-glass"


@pcscd.ONE_PCSCD
def test_an_expired_piv_card_is_refused_and_breaks_the_glass_after_the_button(
    appliance: Layout, cli: CliRunner, tmp_path: Path
) -> None:
    """A contact PIV card through a real pcscd and vpcd (`handoff sim card`): genuine, its key
    proven, but out of its dates."""
    pcscd.ensure_running()
    ca = PivCa()
    key, cert, card_uuid = ca.card(expired=True)
    key_path, cert_path = write_card(tmp_path, key, cert)
    reader = {
        "kind": "pcsc",
        "name": "Virtual PCD 00 00",
        "auth": "piv-cak",
        "trust_anchors": str(ca.write(tmp_path / "ca.pem")),
    }
    with running(appliance, cli, tmp_path, reader, f"{card_uuid.hex()},dee,Dee Lin,RN,false\n") as (_, factory, events):

        def insert() -> None:
            result = cli("sim", "card", "04A1B2C3", "--piv-key", key_path, "--piv-cert", cert_path, "--hold", "0.3")
            assert result.returncode == 0, result.stderr
            pcscd.wait_until_empty()

        def types(count: int) -> list[tuple[str, str | None]]:
            found = events.wait_for_count(lambda m: "/events/" in m.topic, count)
            return [(m.json()["type"].removeprefix("org.handoff."), m.json()["data"]["reason"]) for m in found]

        insert()
        assert types(1) == [("tap_rejected", "piv_expired")]
        assert BOARD.button is not None
        factory.pin(BOARD.button).drive_low()
        factory.pin(BOARD.button).drive_high()
        insert()
        assert types(4)[1:] == [("tap_rejected", "piv_expired"), ("break_glass", "expired"), ("checkout", None)]
        declared = next(m.json() for m in events.snapshot() if m.topic.endswith("/events/break_glass"))
        assert declared["data"]["staff_id"] == "dee"


def test_a_pin_map_button_must_be_a_free_bcm_pin(tmp_path: Path) -> None:
    text = BOARD.source.read_text()
    for bad, problem in (
        ("break_glass_button = 17", "two outputs share one pin"),
        ("break_glass_button = 40", "BCM pin"),
    ):
        path = tmp_path / "cart.toml"
        path.write_text(text.replace("break_glass_button = 23", bad))
        with pytest.raises(ConfigError, match=problem):
            parse_board(path)
