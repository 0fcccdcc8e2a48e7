"""Hotplug through pyudev: a reader waiting for its device wakes the moment udev announces one.

The monitor listens to udev (not the raw kernel), so a device is announced only after udev has
run its rules: the node has its group and permissions, and /dev/handoff/ links exist. Where
no monitor can be opened (no netlink, a container) the wait simply times out, and the reader
looks again on its backoff as it would without hotplug.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import pyudev

log = logging.getLogger("handoff.readers")

EVENT_NODES: Final = "/dev/input/event"


def is_new_event_node(device: pyudev.Device) -> bool:
    """An evdev node was added: an input device's parent, its mouse or js nodes are not readable keys."""
    return device.action == "add" and (device.device_node or "").startswith(EVENT_NODES)


class InputHotplug:
    def __init__(self) -> None:
        try:
            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            monitor.filter_by("input")
            monitor.start()
        except (OSError, ImportError) as exc:
            log.warning("no udev monitor (%s): readers are looked for every few seconds instead", exc)
            monitor = None
        self._monitor: pyudev.Monitor | None = monitor

    def wait_for_arrival(self, timeout: float) -> bool:
        """True as soon as a new event node appears; False when `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self._monitor is None:
                time.sleep(left)
                return False
            device = self._monitor.poll(timeout=left)
            if device is None:
                return False
            if is_new_event_node(device):
                return True
        return False
