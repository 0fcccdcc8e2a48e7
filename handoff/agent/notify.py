"""The idle-lock warning on the workstation's screen: freedesktop Notifications over D-Bus.

The clinician looks at the screen, not at the cart's LED: before the appliance locks an idle
session, the desktop shows a notification saying when, and takes it back when activity puts
the lock off. `org.freedesktop.Notifications` is what every Linux desktop's notification
daemon serves on the user's session bus; jeepney speaks it without a GLib main loop, as the
agent already does for logind. One short-lived connection per call, like `agent.logind`: a
connection kept across a logout would point at a desktop that is gone.
"""

from __future__ import annotations

import time
from typing import Final

from jeepney import DBusAddress, DBusErrorResponse, new_method_call
from jeepney.io.blocking import open_dbus_connection
from jeepney.wrappers import unwrap_msg

BUS_NAME: Final = "org.freedesktop.Notifications"
SERVER: Final = DBusAddress("/org/freedesktop/Notifications", bus_name=BUS_NAME, interface=BUS_NAME)
APP_NAME: Final = "handoff"
SUMMARY: Final = "This workstation locks soon"
CRITICAL: Final = 2
"""Notifications urgency `critical`: most desktops keep it on screen instead of fading it out."""
CALL_TIMEOUT_S: Final = 5.0


class NotifyError(Exception):
    """The session bus or its notification server could not be reached, or refused the call."""


class DesktopWarning:
    def __init__(self, bus: str) -> None:
        self._bus = bus
        """A D-Bus address, or "SESSION" for $DBUS_SESSION_BUS_ADDRESS."""
        self._shown: int = 0
        """The id the server gave the warning on screen; 0 when none is."""

    @property
    def shown(self) -> bool:
        return self._shown != 0

    def show(self, lock_at: float, now: float) -> None:
        """Put the warning up, or update the one already up (the server replaces it by id)."""
        clock = time.strftime("%H:%M:%S", time.localtime(lock_at))
        body = (
            f"It locks at {clock}, in {max(0, round(lock_at - now))} s, unless it is used."
            " Move the mouse or press a key to stay signed in."
        )
        message = new_method_call(
            SERVER,
            "Notify",
            "susssasa{sv}i",
            (
                APP_NAME,
                self._shown,
                "system-lock-screen",
                SUMMARY,
                body,
                [],
                {"urgency": ("y", CRITICAL)},
                max(1, int((lock_at - now) * 1000)),
            ),
        )
        (notification,) = self._call(message)
        if not isinstance(notification, int) or notification <= 0:
            raise NotifyError(f"the notification server answered Notify with {notification!r}, not an id")
        self._shown = notification

    def withdraw(self) -> None:
        """Take the warning down: the lock it announced was put off, or has happened."""
        if not self._shown:
            return
        shown, self._shown = self._shown, 0
        self._call(new_method_call(SERVER, "CloseNotification", "u", (shown,)))

    def _call(self, message: object) -> tuple[object, ...]:
        try:
            bus = open_dbus_connection(bus=self._bus)
        except (OSError, KeyError, ValueError) as exc:
            raise NotifyError(f"cannot reach the desktop's session bus: {exc}") from None
        try:
            body: tuple[object, ...] = unwrap_msg(bus.send_and_get_reply(message, timeout=CALL_TIMEOUT_S))
        except DBusErrorResponse as exc:
            raise NotifyError(f"the notification server refused: {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise NotifyError(f"the notification server did not answer: {exc}") from None
        finally:
            bus.close()
        return body
