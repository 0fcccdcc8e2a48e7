"""A real dbus-daemon with a small stand-in for systemd-logind on it.

logind itself cannot run here (it needs systemd as PID 1 and real seats), so this serves the
part of `org.freedesktop.login1` the agent uses, over a real bus, with jeepney: ListSessions,
LockSession, TerminateSession, and the properties IdleHint, IdleSinceHint (manager) and Type,
LockedHint, State (sessions). `stubborn` sessions ignore a lock, as a hung screen locker would.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jeepney import HeaderFields, MessageType, new_error, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection

BUS_NAME = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


@dataclass
class FakeSession:
    session_id: str
    kind: str = "x11"
    locked: bool = False
    state: str = "active"
    stubborn: bool = False

    @property
    def path(self) -> str:
        return f"{MANAGER_PATH}/session/_{self.session_id}"


@dataclass
class FakeLogind:
    sessions: dict[str, FakeSession] = field(default_factory=dict)
    idle: bool = False
    idle_since_usec: int = field(default_factory=lambda: int(time.time() * 1e6))
    calls: list[tuple[str, str]] = field(default_factory=list)

    def answer(self, member: str, path: str, body: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]] | str:
        """(signature, body) of the reply, or the name of a D-Bus error."""
        if member == "ListSessions":
            listed = [(s.session_id, 1000, "nurse", "seat0", s.path) for s in self.sessions.values()]
            return "a(susso)", (listed,)
        if member in ("LockSession", "TerminateSession"):
            (session_id,) = body
            self.calls.append((member, session_id))
            session = self.sessions.get(session_id)
            if session is None:
                return "org.freedesktop.login1.NoSuchSession"
            if member == "TerminateSession":
                del self.sessions[session_id]
            elif not session.stubborn:
                session.locked = True
            return "", ()
        if member == "Get":
            _interface, name = body
            return "v", (self._property(path, name),)
        return "org.freedesktop.DBus.Error.UnknownMethod"

    def _property(self, path: str, name: str) -> tuple[str, Any]:
        if path == MANAGER_PATH:
            return ("b", self.idle) if name == "IdleHint" else ("t", self.idle_since_usec)
        session = next(s for s in self.sessions.values() if s.path == path)
        values = {"Type": ("s", session.kind), "LockedHint": ("b", session.locked), "State": ("s", session.state)}
        return values[name]


class LogindBus:
    """dbus-daemon on a socket under `workdir`, serving `logind` until `stop()`."""

    def __init__(self, workdir: Path, logind: FakeLogind) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        socket = workdir / "system_bus_socket"
        config = workdir / "bus.conf"
        config.write_text(CONFIG.format(socket=socket))
        self.address = f"unix:path={socket}"
        self.logind = logind
        self._daemon = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile", "--print-address"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._daemon.stdout is not None
        # It prints its address once it listens: connecting earlier may find the socket refusing.
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
            fields = message.header.fields
            member, path = fields[HeaderFields.member], fields[HeaderFields.path]
            answer = self.logind.answer(member, path, message.body)
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
