"""The owning loop in-process with a hand-moved clock: timers in milliseconds, commit before feedback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from handoff import db
from handoff.badge_ref import load_secret
from handoff.config import load_config
from handoff.core.inputs import Tick
from handoff.directory import Directory, read_csv
from handoff.feedback.cues import Cue
from handoff.readers.base import BadgePresented, BadgeRemoved
from handoff.runtime.appliance import Appliance, Stop
from handoff.store import Store
from tests.kit.broker import Broker
from tests.kit.config import PREFIX, Layout
from tests.kit.net import free_tcp_port
from tests.kit.outbox import publisher

UID = bytes.fromhex("04A1B2C3")


@dataclass
class HandClock:
    now: float = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@dataclass
class Recorder:
    """A feedback output that notes each cue with the outbox depth at that moment."""

    store: Store
    cues: list[tuple[Cue, int]] = field(default_factory=list)
    shown: threading.Event = field(default_factory=threading.Event)
    ambient: list[tuple[str, bool, bool]] = field(default_factory=list)

    def show(self, cue: Cue) -> None:
        self.cues.append((cue, self.store.depth()))
        self.shown.set()

    def set_ambient(self, state: str, online: bool, fault: bool = False) -> None:
        self.ambient.append((state, online, fault))

    def close(self) -> None:
        return


class Loop:
    def __init__(self, layout: Layout, broker_port: int | None = None) -> None:
        layout.configure(port=broker_port or free_tcp_port(), policy={"idle_timeout_s": 100})
        self.config = load_config(layout.config)
        csv = layout.root / "badges.csv"
        csv.write_text("uid,staff_id,name,role\n04A1B2C3,ana,Ana,RN\n")
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
            feedback=self.feedback,
            publisher=self.publisher,
            clock=self.clock,
            new_id=lambda: f"id-{next(ids)}",
            clock_synced=lambda: True,
            on_command=lambda command: [],
            heartbeat=lambda: None,
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
        running = Loop(appliance, broker.port)
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
