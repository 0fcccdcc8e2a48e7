"""The owning loop in-process with a hand-moved clock: timers in milliseconds, commit before feedback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff import db
from handoff.audit.keys import public_pem
from handoff.badge_ref import load_secret
from handoff.commands.handler import CommandHandler
from handoff.config import load_config
from handoff.core.inputs import Tick
from handoff.directory import Directory, read_csv
from handoff.feedback.board import load_board
from handoff.feedback.cues import PATTERNS, Cue
from handoff.feedback.gpio import GpioLights
from handoff.feedback.output import CueFeedback, Feedback
from handoff.readers.base import BadgePresented, BadgeRemoved
from handoff.receipt import ActionOutcome, make_receipt
from handoff.runtime.appliance import Appliance, ReceiptMessage, Stop
from handoff.runtime.clock import Clock, SystemClock
from handoff.store import Store
from handoff.timefmt import rfc3339
from tests.kit.broker import Broker
from tests.kit.config import PREFIX, Layout
from tests.kit.gpio import mock_pins
from tests.kit.net import free_tcp_port
from tests.kit.outbox import publisher

UID = bytes.fromhex("04A1B2C3")
OTHER_UID = bytes.fromhex("04A1B2C3D4E5F6")


@dataclass
class HandClock:
    now: float = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


@dataclass
class Recorder:
    """A feedback output that notes each cue with the outbox depth at that moment."""

    store: Store
    cues: list[tuple[Cue, int]] = field(default_factory=list)
    shown: threading.Event = field(default_factory=threading.Event)
    ambient: list[tuple[str, bool, bool]] = field(default_factory=list)
    warnings: list[bool] = field(default_factory=list)

    def show(self, cue: Cue) -> None:
        self.cues.append((cue, self.store.depth()))
        self.shown.set()

    def set_ambient(self, state: str, online: bool, fault: bool = False, warning: bool = False) -> None:
        self.ambient.append((state, online, fault))
        self.warnings.append(warning)

    def close(self) -> None:
        return


AGENT_KEY = Ed25519PrivateKey.generate()


class Loop:
    def __init__(
        self,
        layout: Layout,
        feedback: Feedback | None = None,
        clock: Clock | None = None,
        broker_port: int | None = None,
        agent: dict[str, object] | None = None,
    ) -> None:
        layout.configure(port=broker_port or free_tcp_port(), policy={"idle_timeout_s": 100}, agent=agent)
        self.config = load_config(layout.config)
        csv = layout.root / "badges.csv"
        csv.write_text(f"uid,staff_id,name,role\n{UID.hex()},ana,Ana,RN\n{OTHER_UID.hex()},bo,Bo,MD\n")
        self.conn = conn = db.connect(self.config.appliance.data_dir)
        Directory(conn).replace(read_csv(csv, load_secret(layout.secret)))
        self.store = Store(conn)
        self.feedback = Recorder(Store(db.connect(self.config.appliance.data_dir)))
        self.publisher = publisher(self.config.mqtt, self.config.appliance.data_dir)
        self.clock = HandClock()
        ids = iter(range(1_000_000))
        self.appliance = Appliance(
            self.config,
            conn=conn,
            store=self.store,
            secret=load_secret(layout.secret),
            feedback=feedback or self.feedback,
            publisher=self.publisher,
            clock=clock or self.clock,
            new_id=lambda: f"id-{next(ids)}",
            clock_synced=lambda: True,
            commands=CommandHandler(conn, self.config.appliance.device_id, [], lambda result: None),
            heartbeat=lambda: None,
            agent_keys=[AGENT_KEY.public_key()] if agent else [],
        )
        self.thread = threading.Thread(target=self.appliance.run, daemon=True)
        self.thread.start()

    def cue_after(self, item: object) -> Cue:
        self.feedback.shown.clear()
        self.appliance.submit(item)  # type: ignore[arg-type]
        assert self.feedback.shown.wait(5)
        return self.feedback.cues[-1][0]


@pytest.fixture
def loop(appliance: Layout) -> Iterator[Loop]:
    running = Loop(appliance)
    yield running
    running.appliance.submit(Stop())
    running.thread.join(5)


def test_accepted_is_shown_only_after_the_commit(loop: Loop) -> None:
    assert loop.cue_after(BadgePresented("nfc:usb", UID, "iso14443a", time.monotonic())) == Cue.ACCEPTED
    assert loop.feedback.cues[-1] == (Cue.ACCEPTED, 1), "the event was in the outbox before the light"


def test_idle_warning_then_lock_on_a_moved_clock(loop: Loop) -> None:
    loop.cue_after(BadgePresented("nfc:usb", UID, "iso14443a", time.monotonic()))
    loop.appliance.submit(BadgeRemoved("nfc:usb", UID, time.monotonic()))
    loop.clock.now += 81
    assert loop.cue_after(Tick()) == Cue.IDLE_WARNING
    time.sleep(0.05)
    assert loop.appliance._sleep_for() > 0, "once warned, the loop must sleep, not spin until the lock"
    loop.clock.now += 20
    assert loop.cue_after(Tick()) == Cue.LOCKED
    deadline = time.monotonic() + 5
    while loop.appliance.state.mode != "locked" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.appliance.state.mode == "locked"
    assert [e.topic.rsplit("/", 1)[-1] for e in loop.store.unsent()] == ["checkout", "forced_logoff"]


def test_unknown_badge_is_rejected(loop: Loop) -> None:
    assert loop.cue_after(BadgePresented("nfc:usb", b"\x01\x02\x03\x04", "iso14443a", time.monotonic())) == Cue.REJECTED


def test_read_only_database_gives_device_error_and_keeps_what_was_committed(loop: Loop) -> None:
    loop.cue_after(BadgePresented("nfc:usb", UID, "iso14443a", time.monotonic()))
    loop.appliance.submit(BadgeRemoved("nfc:usb", UID, time.monotonic()))
    loop.conn.execute("PRAGMA query_only = 1")
    loop.clock.now += 5
    assert loop.cue_after(BadgePresented("nfc:usb", UID, "iso14443a", time.monotonic())) == Cue.DEVICE_ERROR
    assert loop.appliance.state.mode == "in_use", "nothing that could not be recorded was accepted"
    assert [e.seq for e in loop.store.unsent()] == [1]
    loop.conn.execute("PRAGMA query_only = 0")
    loop.appliance.submit(BadgeRemoved("nfc:usb", UID, time.monotonic()))
    assert loop.cue_after(BadgePresented("nfc:usb", UID, "iso14443a", time.monotonic())) == Cue.RETURNED


def test_an_outbox_the_broker_refuses_lights_the_fault(appliance: Layout) -> None:
    """The real loop and publisher against mosquitto whose ACL refuses events (PUBACK 0x87)."""
    acl = appliance.root / "acl"
    rules = (("readwrite", "state"), ("readwrite", "status"), ("read", "cmd/#"), ("read", "events/#"))
    acl.write_text("".join(f"topic {access} {PREFIX}/{topic}\n" for access, topic in rules))
    with Broker(appliance.root / "broker", extra=f"acl_file {acl}") as broker:
        running = Loop(appliance, broker_port=broker.port)
        running.publisher.start()
        try:
            assert running.cue_after(BadgePresented("nfc:usb", UID, "iso14443a", time.monotonic())) == Cue.ACCEPTED
            deadline = time.monotonic() + 20
            while not any(fault for _, _, fault in running.feedback.ambient) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert any(mode == "in_use" and fault for mode, _, fault in running.feedback.ambient)
        finally:
            running.appliance.submit(Stop())
            running.thread.join(5)
            running.publisher.stop(flush_timeout=0)


def _beeps(states: list[tuple[float, bool]]) -> list[float]:
    """How long the buzzer sounded each time, from MockPin's (seconds since last change, state) log."""
    return [after[0] for before, after in pairwise(states) if before[1] and not after[1]]


def _frame_beeps(cue: Cue) -> list[float]:
    return [frame.seconds for frame in PATTERNS[cue] if "buzzer" in frame.on]


def test_every_outcome_beeps_whole_through_the_real_loop(appliance: Layout) -> None:
    """Each commit is followed by an ambient change; it must wait for the cue, not silence it."""
    board = load_board("pi-cart-v1")
    with mock_pins() as factory:
        output = CueFeedback([GpioLights(board)])
        loop = Loop(appliance, output)
        buzzer = factory.pin(board.pins["buzzer"])
        unknown = bytes.fromhex("01020304")
        steps: list[tuple[str, float, object, Cue | None]] = [
            ("tap", 0.0, UID, Cue.ACCEPTED),
            ("re-tap in the guard", 0.5, UID, None),
            ("handoff", 0.0, OTHER_UID, Cue.HANDOFF),
            ("return", 3.0, OTHER_UID, Cue.RETURNED),
            ("unknown badge", 0.0, unknown, Cue.REJECTED),
            ("tap", 0.0, UID, Cue.ACCEPTED),
            ("idle lock", 101.0, None, Cue.LOCKED),
        ]
        try:
            for what, advance, uid, cue in steps:
                start = len(buzzer.states)
                loop.clock.now += advance
                if isinstance(uid, bytes):
                    loop.appliance.submit(BadgePresented("nfc:usb", uid, "iso14443a", time.monotonic()))
                    loop.appliance.submit(BadgeRemoved("nfc:usb", uid, time.monotonic()))
                else:
                    loop.appliance.submit(Tick())
                time.sleep(1.0)
                heard = _beeps([(state.timestamp, bool(state.state)) for state in buzzer.states[start - 1 :]])
                expected = _frame_beeps(cue) if cue else []
                assert len(heard) == len(expected), f"{what}: heard {heard}, expected {expected}"
                for got, want in zip(heard, expected, strict=True):
                    assert got >= want * 0.9, f"{what}: a {want} s beep lasted {got:.3f} s"
        finally:
            loop.appliance.submit(Stop())
            loop.thread.join(5)
            output.close()


def test_an_unconfirmed_logoff_warns_and_keeps_amber_lit_until_a_receipt_confirms_it(
    appliance: Layout, tmp_path: Path
) -> None:
    """Online, so that amber is not the offline blink: it must be steady, then off."""
    board = load_board("pi-cart-v1")
    keys = appliance.root / "agents.pem"
    keys.write_bytes(public_pem(AGENT_KEY))
    with mock_pins() as factory, Broker(tmp_path / "broker") as broker:
        output = CueFeedback([GpioLights(board)])
        agent = {"keys_file": str(keys), "confirm_s": 5}
        loop = Loop(appliance, output, broker_port=broker.port, agent=agent)
        loop.publisher.start()
        buzzer, amber = factory.pin(board.pins["buzzer"]), factory.pin(board.pins["amber"])
        try:
            for _ in range(2):
                loop.clock.now += 3
                loop.appliance.submit(BadgePresented("nfc:usb", UID, "iso14443a", time.monotonic()))
                loop.appliance.submit(BadgeRemoved("nfc:usb", UID, time.monotonic()))
                time.sleep(1.0)
            checkin = json.loads(list(loop.store.all_events())[-1][0].payload)
            assert checkin["type"] == "org.handoff.checkin" and not amber.state
            start = len(buzzer.states)
            loop.clock.now += 5
            loop.appliance.submit(Tick())
            time.sleep(1.5)
            heard = _beeps([(state.timestamp, bool(state.state)) for state in buzzer.states[start - 1 :]])
            assert len(heard) == len(_frame_beeps(Cue.UNCONFIRMED)), heard
            assert amber.state, "amber stays lit while the logoff is unconfirmed"
            receipt = make_receipt(
                AGENT_KEY,
                event=checkin,
                outcomes=[ActionOutcome("command", True)],
                source="urn:handoff:st-elsewhere:agent:ws",
                receipt_id="r-1",
                now=time.time(),
            )
            loop.appliance.submit(ReceiptMessage(json.dumps(receipt).encode()))
            time.sleep(0.5)
            assert not amber.state, "a late receipt clears the amber"
            assert loop.appliance.status()["receipts"] == {"accepted": 1}
        finally:
            loop.appliance.submit(Stop())
            loop.thread.join(5)
            loop.publisher.stop(flush_timeout=0)
            output.close()


def test_wall_clock_steps_of_three_days_neither_fire_nor_hold_back_timers(appliance: Layout) -> None:
    """NTP steps a Pi's clock by days after boot: only the monotonic clock may time a session."""
    wall, monotonic = [1_800_000_000.0], [5_000.0]
    loop = Loop(appliance, clock=SystemClock(wall=lambda: wall[0], monotonic=lambda: monotonic[0]))
    try:
        assert loop.cue_after(BadgePresented("nfc:usb", UID, "iso14443a", time.monotonic())) == Cue.ACCEPTED
        loop.appliance.submit(BadgeRemoved("nfc:usb", UID, time.monotonic()))
        wall[0] += 3 * 86400
        monotonic[0] += 50
        loop.appliance.submit(Tick())
        wall[0] -= 6 * 86400
        monotonic[0] += 49
        loop.appliance.submit(Tick())
        time.sleep(0.3)
        assert [e.topic for e in loop.store.unsent()] == ["events/checkout"], "a wall-clock step fired a timer"
        monotonic[0] += 1.5
        assert loop.cue_after(Tick()) == Cue.LOCKED, (
            "the idle lock must come 100 s after the tap, by the monotonic clock"
        )
        checkout, logoff = (json.loads(e.payload) for e in loop.store.unsent())
        assert checkout["time"] == rfc3339(1_800_000_000.0)
        assert logoff["data"]["reason"] == "idle_timeout" and logoff["time"] == rfc3339(wall[0])
        saved = loop.store.load_state()
        assert saved is not None and saved.since == wall[0], "state is saved in wall-clock time"
    finally:
        loop.appliance.submit(Stop())
        loop.thread.join(5)


def test_a_database_that_fails_reads_mid_run_gives_device_error_and_the_loop_serves_on(loop: Loop) -> None:
    """A read error (here: the badge table gone from under the loop) once ended the loop thread."""
    assert loop.cue_after(BadgePresented("nfc:usb", UID, "iso14443a", time.monotonic())) == Cue.ACCEPTED
    loop.appliance.submit(BadgeRemoved("nfc:usb", UID, time.monotonic()))
    saboteur = db.connect(loop.config.appliance.data_dir)
    saboteur.execute("ALTER TABLE badges RENAME TO badges_gone")
    loop.clock.now += 5
    assert loop.cue_after(BadgePresented("nfc:usb", OTHER_UID, "iso14443a", time.monotonic())) == Cue.DEVICE_ERROR
    assert loop.thread.is_alive() and loop.appliance.store_fault is not None
    assert "no such table: badges" in loop.appliance.store_fault
    saboteur.execute("ALTER TABLE badges_gone RENAME TO badges")
    loop.appliance.submit(BadgeRemoved("nfc:usb", OTHER_UID, time.monotonic()))
    assert loop.cue_after(BadgePresented("nfc:usb", OTHER_UID, "iso14443a", time.monotonic())) == Cue.HANDOFF
    assert loop.appliance.store_fault is None
