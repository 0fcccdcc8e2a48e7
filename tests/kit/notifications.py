"""A real dbus-daemon as the desktop's session bus, with a stand-in notification server on it.

No desktop runs here; this serves the part of `org.freedesktop.Notifications` the agent uses
(Notify, CloseNotification) over a real bus with jeepney, and keeps every call so a test can
wait for one and read what the clinician would have seen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kit.dbus import StandInBus

BUS_NAME = "org.freedesktop.Notifications"
WAIT_S = 15.0


@dataclass(frozen=True)
class Shown:
    replaces_id: int
    summary: str
    body: str
    hints: dict[str, Any]
    expire_ms: int
    given_id: int


@dataclass
class NotificationServer:
    shown: list[Shown] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    _next_id: int = 0

    def answer(self, member: str, body: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]] | str:
        with self.changed:
            if member == "Notify":
                _app, replaces_id, _icon, summary, text, _actions, hints, expire_ms = body
                given = replaces_id or self._new_id()
                self.shown.append(Shown(replaces_id, summary, text, dict(hints), expire_ms, given))
                self.changed.notify_all()
                return "u", (given,)
            if member == "CloseNotification":
                self.closed.append(body[0])
                self.changed.notify_all()
                return "", ()
        return "org.freedesktop.DBus.Error.UnknownMethod"

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def wait_for_shown(self, count: int) -> list[Shown]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.shown) >= count, WAIT_S), f"shown: {self.shown}"
            return list(self.shown)

    def wait_for_closed(self, count: int) -> list[int]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.closed) >= count, WAIT_S), f"closed: {self.closed}"
            return list(self.closed)


class NotificationBus(StandInBus):
    """dbus-daemon on a socket under `workdir` as the session bus, serving `server` until `stop()`."""

    def __init__(self, workdir: Path, server: NotificationServer) -> None:
        self.server = server
        super().__init__(workdir, "session", BUS_NAME, lambda member, _path, body: server.answer(member, body))
