"""The seat's graphical sessions, through systemd-logind's D-Bus API (`org.freedesktop.login1`).

jeepney speaks D-Bus in pure Python with no GLib main loop, which suits a small service that
makes a few calls per handoff. Every result is read back from logind, not assumed: a lock is
done when the session says `LockedHint`, a termination when the session is gone or closing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

from jeepney import DBusAddress, DBusErrorResponse, Properties, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import unwrap_msg

BUS_NAME: Final = "org.freedesktop.login1"
MANAGER: Final = DBusAddress("/org/freedesktop/login1", bus_name=BUS_NAME, interface=f"{BUS_NAME}.Manager")
GRAPHICAL: Final = frozenset({"x11", "wayland", "mir"})
CALL_TIMEOUT_S: Final = 5.0
SETTLE_S: Final = 2.0
"""How long logind may take to show a lock or a termination before the action counts as failed."""


class LogindError(Exception):
    """logind could not be reached or refused a call: the action failed, and this says why."""


@dataclass(frozen=True)
class Session:
    session_id: str
    path: str
    kind: str
    locked: bool
    state: str


@dataclass(frozen=True)
class Idle:
    idle: bool
    since_usec: int
    """CLOCK_REALTIME microseconds of the last change of `idle` (logind's IdleSinceHint)."""


class Logind:
    """One short-lived system-bus connection per use: the agent calls rarely, and a connection
    kept open across a dbus restart would fail every later handoff."""

    def end_sessions(self, mode: Literal["lock", "terminate"]) -> tuple[bool, str]:
        """Lock or terminate every graphical session, then read them back; (done, what was seen)."""
        with _connection() as bus:
            sessions = [session for session in _sessions(bus) if session.kind in GRAPHICAL]
            for session in sessions:
                method = "LockSession" if mode == "lock" else "TerminateSession"
                _call(bus, new_method_call(MANAGER, method, "s", (session.session_id,)))
            deadline = time.monotonic() + SETTLE_S
            while True:
                left = _still_open(bus, sessions, mode)
                if not left or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        if not sessions:
            return True, "no graphical session"
        if left:
            return False, f"{mode} not confirmed by logind for session(s) {', '.join(left)}"
        return True, f"{len(sessions)} session(s) {'locked' if mode == 'lock' else 'terminated'}"

    def idle(self) -> Idle:
        with _connection() as bus:
            idle = _property(bus, MANAGER, "IdleHint")
            since = _property(bus, MANAGER, "IdleSinceHint")
        return Idle(bool(idle), int(since))


@contextmanager
def _connection() -> Iterator[DBusConnection]:
    try:
        bus = open_dbus_connection(bus="SYSTEM")
    except (OSError, KeyError, ValueError) as exc:
        raise LogindError(f"cannot reach the system bus: {exc}") from None
    try:
        yield bus
    finally:
        bus.close()


def _call(bus: DBusConnection, message: Any) -> tuple[Any, ...]:
    try:
        body: tuple[Any, ...] = unwrap_msg(bus.send_and_get_reply(message, timeout=CALL_TIMEOUT_S))
    except DBusErrorResponse as exc:
        raise LogindError(f"logind refused: {exc}") from None
    except (OSError, TimeoutError) as exc:
        raise LogindError(f"logind did not answer: {exc}") from None
    return body


def _property(bus: DBusConnection, address: DBusAddress, name: str) -> Any:
    (variant,) = _call(bus, Properties(address).get(name))
    return variant[1]


def _sessions(bus: DBusConnection) -> list[Session]:
    (listed,) = _call(bus, new_method_call(MANAGER, "ListSessions"))
    found = []
    for session_id, _uid, _user, _seat, path in listed:
        address = DBusAddress(path, bus_name=BUS_NAME, interface=f"{BUS_NAME}.Session")
        found.append(
            Session(
                session_id,
                path,
                str(_property(bus, address, "Type")),
                bool(_property(bus, address, "LockedHint")),
                str(_property(bus, address, "State")),
            )
        )
    return found


def _still_open(bus: DBusConnection, ended: list[Session], mode: str) -> list[str]:
    now = {session.session_id: session for session in _sessions(bus)}
    left = []
    for session in ended:
        current = now.get(session.session_id)
        if current is None or current.state == "closing":
            continue
        if mode == "lock" and current.locked:
            continue
        left.append(session.session_id)
    return left
