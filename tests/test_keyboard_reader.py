"""The keyboard-wedge device layer against a virtual keyboard made with evdev.UInput.

This needs /dev/uinput, which the development machines and CI lack: the tests skip there with
that reason and run on a Pi (or any Linux with the uinput module loaded). The decoder they
drive is tested everywhere (test_keystrokes.py).
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator

import pytest
from evdev import InputDevice, UInput, ecodes

from handoff.config import ApplianceConfig, Config, KeyboardReaderConfig
from handoff.doctor.readers import check_keyboard_readers
from handoff.doctor.result import Status
from handoff.readers.base import BadgePresented, BadgeRemoved, ReaderEvent
from handoff.readers.keyboard import KeyboardReader
from handoff.readers.pacs import text_badge_bytes

pytestmark = pytest.mark.skipif(
    not os.access("/dev/uinput", os.W_OK), reason="no writable /dev/uinput here: the evdev device layer runs on a Pi"
)
DIGITS = [ecodes.KEY_0, ecodes.KEY_0, ecodes.KEY_1, ecodes.KEY_2, ecodes.KEY_3, ecodes.KEY_ENTER]


@pytest.fixture
def wedge() -> Iterator[UInput]:
    device = UInput({ecodes.EV_KEY: [*range(ecodes.KEY_ESC, ecodes.KEY_KPDOT + 1)]}, name="RFIDeas pcProx test")
    yield device
    device.close()


def burst(device: UInput, codes: list[int]) -> None:
    for code in codes:
        device.write(ecodes.EV_KEY, code, 1)
        device.write(ecodes.EV_KEY, code, 0)
        device.syn()
        time.sleep(0.003)


def test_a_grabbed_wedge_reports_a_badge_and_nobody_else_sees_the_keys(wedge: UInput) -> None:
    events: queue.Queue[ReaderEvent] = queue.Queue()
    reader = KeyboardReader("RFIDeas")
    reader.open(events.put)
    try:
        deadline = time.monotonic() + 5
        while not reader.health().ok and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.health().ok, reader.health().detail
        with pytest.raises(OSError):
            InputDevice(wedge.device.path).grab()
        burst(wedge, DIGITS)
        presented, removed = events.get(timeout=5), events.get(timeout=5)
        assert isinstance(presented, BadgePresented) and isinstance(removed, BadgeRemoved)
        assert presented.identifier == text_badge_bytes("00123")
    finally:
        reader.close()


def test_a_wedge_another_program_holds_is_not_read(wedge: UInput) -> None:
    holder = InputDevice(wedge.device.path)
    holder.grab()
    reader = KeyboardReader("RFIDeas")
    reader.open(lambda event: None)
    try:
        time.sleep(1.0)
        assert not reader.health().ok and "cannot be grabbed exclusively" in reader.health().detail
    finally:
        reader.close()
        holder.ungrab()


def test_a_wedge_unplugged_and_plugged_back_is_grabbed_again_without_a_restart() -> None:
    """Unplugged long enough for the backoff to reach 8 s; udev's announcement finds it at once."""
    capabilities = {ecodes.EV_KEY: [*range(ecodes.KEY_ESC, ecodes.KEY_KPDOT + 1)]}
    first = UInput(capabilities, name="RFIDeas pcProx test")
    events: queue.Queue[ReaderEvent] = queue.Queue()
    reader = KeyboardReader("RFIDeas")
    reader.open(events.put)
    try:
        deadline = time.monotonic() + 5
        while not reader.health().ok and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.health().ok, reader.health().detail
        first.close()
        time.sleep(8.0)
        assert not reader.health().ok and "no input device matches" in reader.health().detail
        plugged = time.monotonic()
        second = UInput(capabilities, name="RFIDeas pcProx test")
        try:
            while not reader.health().ok and time.monotonic() - plugged < 3:
                time.sleep(0.02)
            assert reader.health().ok, reader.health().detail
            assert time.monotonic() - plugged < 2.0, "found by polling, not by udev"
            with pytest.raises(OSError):
                InputDevice(second.device.path).grab()
            burst(second, DIGITS)
            assert isinstance(events.get(timeout=5), BadgePresented)
        finally:
            second.close()
    finally:
        reader.close()


def test_doctor_finds_the_wedge_and_says_whether_it_can_be_grabbed(wedge: UInput) -> None:
    config = Config(
        appliance=ApplianceConfig(site="s", device_id="d", reader_id="r"),
        readers=(KeyboardReaderConfig(match="RFIDeas"),),
    )
    (free,) = check_keyboard_readers(config)
    assert free.status is Status.PASS and "can be grabbed exclusively" in free.detail, free.line()
    holder = InputDevice(wedge.device.path)
    holder.grab()
    try:
        (held,) = check_keyboard_readers(config)
    finally:
        holder.ungrab()
    assert held.status is Status.FAIL and "cannot be grabbed exclusively" in held.detail, held.line()
