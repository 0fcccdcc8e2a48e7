"""libosdp's byte channel over a serial port (a USB-RS485 adapter's tty), through pyserial.

libosdp's Python control panel takes a `Channel` object and calls it from its own refresh
thread, never blocking: reads return what has arrived (possibly nothing). The channel never
raises: an exception inside libosdp's callback leaves the panel's thread dead with the reader
still marked online, so a failing port (an adapter pulled out) is recorded in `lost` for the
reader to see instead. It also remembers whether any byte came back since it was opened,
which tells a reader that answers but refuses our key from a bus where nobody answers at all.
"""

from __future__ import annotations

import termios

import serial
from osdp import Channel

WRITE_TIMEOUT_S = 0.5
"""A UART drains its buffer at the baud rate; only a stuck port takes this long."""


class SerialChannel(Channel):  # type: ignore[misc]
    def __init__(self, port: str, baud: int) -> None:
        super().__init__()
        self._serial = serial.Serial(port, baud, timeout=0, write_timeout=WRITE_TIMEOUT_S, exclusive=True)
        self.heard = False
        self.lost: str | None = None
        """Why the port failed, once it has."""

    def read(self, max_bytes: int) -> bytes:
        try:
            data: bytes = self._serial.read(max_bytes)
        except serial.SerialException as exc:
            self.lost = self.lost or str(exc)
            return b""
        if data:
            self.heard = True
        return data

    def write(self, buf: bytes) -> int:
        try:
            written: int | None = self._serial.write(buf)
        except serial.SerialTimeoutException:
            return 0
        except serial.SerialException as exc:
            self.lost = self.lost or str(exc)
            return 0
        return written or 0

    def flush(self) -> None:
        """libosdp flushes to drop a half-received packet after an error: discard what is waiting."""
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, termios.error) as exc:
            self.lost = self.lost or str(exc)

    def close(self) -> None:
        self._serial.close()
