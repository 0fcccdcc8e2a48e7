"""A real dbus-daemon as the desktop's session bus, with a stand-in notification server on it.

No desktop runs here; this serves the part of `org.freedesktop.Notifications` the agent uses
(Notify, CloseNotification) over a real bus with jeepney, and keeps every call so a test can
wait for one and read what the clinician would have seen.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jeepney import HeaderFields, MessageType, new_error, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection

from tests.kit.logind import CONFIG

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


class NotificationBus:
    """dbus-daemon on a socket under `workdir`, serving `server` until `stop()`."""

    def __init__(self, workdir: Path, server: NotificationServer) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        socket = workdir / "session_bus_socket"
        config = workdir / "bus.conf"
        config.write_text(CONFIG.format(socket=socket).replace("<type>system</type>", "<type>session</type>"))
        self.address = f"unix:path={socket}"
        self.server = server
        self._daemon = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile", "--print-address"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._daemon.stdout is not None
        if not self._daemon.stdout.readline():
            raise RuntimeError("dbus-daemon did not start")
        self._conn: DBusConnection = open_dbus_connection(bus=self.address)
        self._conn.send_and_get_reply(message_bus.RequestName(BUS_NAME))
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._running:
            try:
                message = self._conn.receive(timeout=0.1)
            except TimeoutError:
                continue
            except OSError:
                return
            if message.header.message_type != MessageType.method_call:
                continue
            answer = self.server.answer(message.header.fields[HeaderFields.member], message.body)
            if isinstance(answer, str):
                self._conn.send(new_error(message, answer))
            else:
                self._conn.send(new_method_return(message, *answer))

    def stop(self) -> None:
        self._running = False
        self._thread.join(2)
        self._conn.close()
        self._daemon.terminate()
        self._daemon.wait(5)
        if self._daemon.stdout is not None:
            self._daemon.stdout.close()
