"""sd_notify for `Type=notify` with a watchdog: READY once serving, WATCHDOG from the state loop.

The watchdog is pinged by the thread that owns the state, so a wedged loop (not just a live
process) gets the appliance restarted; `Heartbeat` withholds the ping once another vital thread
(the publisher) has died, which the loop cannot see. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        for_us = not watchdog_pid or watchdog_pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and for_us else None
        """systemd restarts the appliance when no ping comes within this (WATCHDOG_USEC). No timer
        of ours keeps it: the state loop pings on every wake and wakes at least once a second."""

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def watchdog(self) -> None:
        if self.watchdog_s is not None:
            self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(message.encode(), self._address)
            except OSError:
                return


class Heartbeat:
    """The state loop's watchdog ping, sent only while no vital thread reports a fault."""

    def __init__(self, notifier: Notifier, *faults: Callable[[], str | None]) -> None:
        self._notifier = notifier
        self._faults = faults

    def __call__(self) -> None:
        if all(fault() is None for fault in self._faults):
            self._notifier.watchdog()
