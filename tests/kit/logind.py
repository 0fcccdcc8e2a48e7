"""A real dbus-daemon with a small stand-in for systemd-logind on it.

logind itself cannot run here (it needs systemd as PID 1 and real seats), so this serves the
part of `org.freedesktop.login1` the agent uses, over a real bus, with jeepney: ListSessions,
LockSession, TerminateSession, and the properties IdleHint, IdleSinceHint (manager) and Type,
LockedHint, State (sessions). `stubborn` sessions ignore a lock, as a hung screen locker would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kit.dbus import StandInBus

BUS_NAME = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"


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


class LogindBus(StandInBus):
    """dbus-daemon on a socket under `workdir` as the system bus, serving `logind` until `stop()`."""

    def __init__(self, workdir: Path, logind: FakeLogind) -> None:
        self.logind = logind
        super().__init__(workdir, "system", BUS_NAME, logind.answer)
