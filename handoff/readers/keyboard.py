"""A keyboard-wedge badge reader (rf IDEAS, OMNIKEY in wedge mode) through python-evdev.

The reader is grabbed exclusively (EVIOCGRAB) so a badge number never types into the EHR
window that has the focus; one that cannot be grabbed is not read at all, and health says so.
It is grabbed only once no key is down (grabbing mid-keystroke leaves the key stuck for the
desktop) and released on close. Bursts are decoded by `keystrokes.BurstDecoder`. A wedge read
has no lasting presence, so each badge read is reported as an arrival and a departure at once.
A reader that is unplugged is found again and grabbed anew when it comes back: udev's
announcement (`hotplug`) wakes the wait at once, the backoff is only the fallback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections.abc import Callable
from typing import Final

import evdev
from evdev import ecodes

from handoff.readers.backoff import reopen_delay
from handoff.readers.base import BadgePresented, BadgeRemoved, Emit
from handoff.readers.hotplug import InputHotplug
from handoff.readers.keystrokes import BurstDecoder, Dropped, Read
from handoff.readers.pacs import text_badge_bytes
from handoff.readers.worker import ReaderWorker

log = logging.getLogger("handoff.readers")

POLL_S: Final = 0.5
RELEASE_WAIT_S: Final = 2.0


def find_device(match: str) -> evdev.InputDevice[str] | None:
    """The first event node that matches; evdev lists only the nodes this user may open."""
    for path in evdev.list_devices():
        try:
            device = evdev.InputDevice(path)
        except OSError:
            continue
        if matches(device, match):
            return device
        device.close()
    return None


def matches(device: evdev.InputDevice[str], match: str) -> bool:
    """`usb:VID:PID` (hex) or a substring of the device name; only a node that can type Enter."""
    keys = device.capabilities().get(ecodes.EV_KEY, [])
    if ecodes.KEY_ENTER not in keys:
        return False
    if match.startswith("usb:"):
        vendor, _, product = match[4:].partition(":")
        return (device.info.vendor, device.info.product) == (int(vendor, 16), int(product, 16))
    return match in device.name


def grab_when_released(device: evdev.InputDevice[str], stopped: Callable[[], bool]) -> None:
    """EVIOCGRAB once no key is down (for at most RELEASE_WAIT_S); raises OSError if another program holds it."""
    deadline = time.monotonic() + RELEASE_WAIT_S
    while device.active_keys() and time.monotonic() < deadline and not stopped():
        time.sleep(0.02)
    device.grab()


class KeyboardReader(ReaderWorker):
    kind = "keyboard"

    def __init__(self, match: str) -> None:
        super().__init__(f"keyboard:{match}")
        self.match = match

    def _interrupt(self) -> None:
        """The read loop wakes every POLL_S to look at the stop flag."""

    def _run(self, emit: Emit) -> None:
        hotplug = InputHotplug()
        failures = 0
        while not self._stop.is_set():
            device = find_device(self.match)
            if device is None:
                failures += 1
                self._set_health(False, f"no input device matches {self.match!r}; plug the reader in")
                self._wait_for_device(hotplug, reopen_delay(failures))
                continue
            try:
                grab_when_released(device, self._stop.is_set)
            except OSError as exc:
                failures += 1
                self._set_health(
                    False,
                    f"{os.fsdecode(device.path)} ({device.name}) cannot be grabbed exclusively ({exc.strerror}): "
                    "another program holds it, so it is not read; stop that program",
                )
                device.close()
                self._stop.wait(reopen_delay(failures))
                continue
            failures = 0
            self._set_health(True, f"grabbed {os.fsdecode(device.path)} ({device.name})")
            try:
                self._read(device, emit)
            except OSError as exc:
                self._set_health(
                    False, f"{os.fsdecode(device.path)} went away ({exc.strerror}); waiting for it to come back"
                )
            finally:
                with contextlib.suppress(OSError):
                    device.ungrab()
                device.close()

    def _wait_for_device(self, hotplug: InputHotplug, delay: float) -> None:
        """Until a new input node appears, `delay` passes, or close(): in POLL_S slices, so close() is prompt."""
        deadline = time.monotonic() + delay
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if hotplug.wait_for_arrival(min(left, POLL_S)):
                return

    def _read(self, device: evdev.InputDevice[str], emit: Emit) -> None:
        decoder = BurstDecoder()
        while not self._stop.is_set():
            ready, _, _ = select.select([device.fd], [], [], POLL_S)
            if not ready:
                continue
            for event in device.read():
                if event.type != ecodes.EV_KEY:
                    continue
                verdict = decoder.feed(event.code, event.value, event.timestamp())
                if isinstance(verdict, Dropped):
                    log.info("%s: a burst that is not a badge was dropped: %s", self.name, verdict.why)
                elif isinstance(verdict, Read):
                    identifier = text_badge_bytes(verdict.characters)
                    now = time.monotonic()
                    emit(BadgePresented(self.name, identifier, "wedge", now))
                    emit(BadgeRemoved(self.name, identifier, now))
