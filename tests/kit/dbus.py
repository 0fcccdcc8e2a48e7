"""A real dbus-daemon on a socket of the test's own, with one stand-in service on it.

logind and a desktop's notification server cannot run here; the bus, the wire protocol and the
client (jeepney) are real, and only the service's answers are the test's.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jeepney import HeaderFields, MessageType, new_error, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>{kind}</type>
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

Answer = tuple[str, tuple[Any, ...]] | str
"""(signature, body) of a method return, or the name of a D-Bus error."""
Service = Callable[[str, str, tuple[Any, ...]], Answer]
"""What the stand-in answers a method call: (member, object path, body) in."""


class StandInBus:
    """dbus-daemon (`kind` "system" or "session") under `workdir`, with `service` owning
    `bus_name` until `stop()`."""

    def __init__(self, workdir: Path, kind: str, bus_name: str, service: Service) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        socket = workdir / f"{kind}_bus_socket"
        config = workdir / "bus.conf"
        config.write_text(CONFIG.format(kind=kind, socket=socket))
        self.address = f"unix:path={socket}"
        self._service = service
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
        self._conn.send_and_get_reply(message_bus.RequestName(bus_name))
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
            answer = self._service(fields[HeaderFields.member], fields.get(HeaderFields.path, ""), message.body)
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
