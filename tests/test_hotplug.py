"""Hotplug for wedge readers on real pyudev objects: devices as udev hands them to a RUN program
(`Devices.from_environment`, in a child process of its own, as libudev reads the environment of
a process only once), and a real netlink monitor. This machine has no udevd and no
/dev/uinput, so no device is ever announced here; the replug test with a real virtual keyboard
is in test_keyboard_reader.py and runs on a Pi."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from handoff.readers.hotplug import InputHotplug
from handoff.readers.keyboard import KeyboardReader
from tests.kit.cli import handoff_env

USB_INPUT = "/devices/platform/soc/3f980000.usb/usb1/1-1/1-1:1.0/0003:0C27:3BFA.0001/input/input7"


VERDICT = """
import pyudev
from handoff.readers.hotplug import is_new_event_node
device = pyudev.Devices.from_environment(pyudev.Context())
print(device.action, is_new_event_node(device))
"""


def verdict(action: str, devpath: str, devname: str | None) -> str:
    """What `is_new_event_node` says of the device udev describes in a RUN program's environment."""
    env = handoff_env({"ACTION": action, "DEVPATH": devpath, "SUBSYSTEM": "input", "SEQNUM": "4242"})
    env.pop("DEVNAME", None)
    if devname is not None:
        env["DEVNAME"] = devname
    done = subprocess.run([sys.executable, "-c", VERDICT], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("action", "node", "devname", "wakes"),
    [
        ("add", "event7", "/dev/input/event7", True),
        ("add", "", None, False),
        ("add", "mouse2", "/dev/input/mouse2", False),
        ("remove", "event7", "/dev/input/event7", False),
        ("change", "event7", "/dev/input/event7", False),
    ],
)
def test_only_a_new_event_node_wakes_a_waiting_reader(action: str, node: str, devname: str | None, wakes: bool) -> None:
    assert verdict(action, f"{USB_INPUT}/{node}".rstrip("/"), devname) == f"{action} {wakes}"


def test_with_nothing_announced_the_wait_ends_at_its_timeout() -> None:
    hotplug = InputHotplug()
    started = time.monotonic()
    assert hotplug.wait_for_arrival(0.3) is False
    assert 0.25 < time.monotonic() - started < 1.0


def test_a_reader_waiting_for_its_device_says_so_and_closes_promptly() -> None:
    reader = KeyboardReader("RFIDeas")
    reader.open(lambda _event: None)
    deadline = time.monotonic() + 5
    while reader.health().detail == "not opened yet" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.6)
    assert not reader.health().ok and "no input device matches 'RFIDeas'" in reader.health().detail
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 1.0
