"""An OSDP reader for tests: libosdp's own PeripheralDevice on the far end of a pseudo-terminal.

The appliance opens the pty's slave path as it would /dev/ttyUSB0 (pyserial, in this process
or in a `handoff run` child); the PD reads and writes the master side. It records every
command it is sent with the time it arrived, and sends card reads and status reports the way
a real reader's firmware would.
"""

from __future__ import annotations

import os
import time
import tty
from typing import Any

from osdp import (
    Capability,
    CardFormat,
    Channel,
    Event,
    LibFlag,
    LogLevel,
    PDCapabilities,
    PDInfo,
    PeripheralDevice,
    StatusReportType,
)

from handoff.readers.pacs import Credential, encode

CAPABILITIES = PDCapabilities(
    [
        (Capability.CommunicationSecurity, 1, 1),
        (Capability.LEDControl, 1, 1),
        (Capability.AudibleControl, 1, 1),
        (Capability.CardDataFormat, 1, 1),
    ]
)


class _MasterChannel(Channel):
    """The pty master, never blocking; EIO (no slave open at that moment) reads as nothing yet."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.fd, max_bytes)
        except (BlockingIOError, OSError):
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self.fd, buf)
        except (BlockingIOError, OSError):
            return 0

    def flush(self) -> None:
        return


class SimulatedReader:
    def __init__(self, address: int = 0, scbk: bytes | None = None) -> None:
        """`scbk` None is a reader fresh from the box: install mode, default key only."""
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self._slave)
        self.address = address
        self.commands: list[tuple[float, dict[str, Any]]] = []
        flags = [LibFlag.EnforceSecure] if scbk is not None else [LibFlag.InstallMode]
        self.pd = PeripheralDevice(
            PDInfo(address, _MasterChannel(self.master), scbk=scbk, flags=flags),
            CAPABILITIES,
            log_level=LogLevel.Error,
            command_handler=self._command,
        )
        self.pd.start()

    def _command(self, command: dict[str, Any]) -> tuple[int, None]:
        self.commands.append((time.monotonic(), command))
        return 0, None

    def received(self) -> list[dict[str, Any]]:
        return [command for _, command in self.commands]

    def card(self, bits: str) -> None:
        padded = bits + "0" * (-len(bits) % 8)
        data = int(padded, 2).to_bytes(len(padded) // 8, "big")
        event = {
            "event": Event.CardRead,
            "reader_no": 0,
            "direction": 0,
            "length": len(bits),
            "format": CardFormat.Wiegand,
            "data": data,
        }
        self.pd.submit_event(event)

    def badge(self, credential: Credential) -> None:
        self.card(encode(credential))

    def local_status(self, *, tamper: bool, power: bool) -> None:
        self.pd.submit_event({"event": Event.Status, "type": StatusReportType.Local, "report": bytes([tamper, power])})

    def secure(self) -> bool:
        return bool(self.pd.is_sc_active())

    def go_silent(self) -> None:
        self.pd.stop()

    def answer_again(self) -> None:
        self.pd.start()

    def unplug(self) -> None:
        """The adapter pulled out: the port's reads fail (EIO) from now on."""
        self.go_silent()
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        if self.pd.thread is not None:
            self.pd.teardown()
        if self.master >= 0:
            os.close(self.master)
        os.close(self._slave)
