"""libosdp's byte channel over a serial port (a USB-RS485 adapter's tty), through pyserial.

libosdp's Python control panel takes a `Channel` object and calls it from its own refresh
thread, never blocking: reads return what has arrived (possibly nothing). The channel also
remembers whether any byte came back since it was opened, which is what tells a reader that
answers but refuses our key from a bus where nobody answers at all.
"""

from __future__ import annotations

import serial
from osdp import Channel


class SerialChannel(Channel):  # type: ignore[misc]
    def __init__(self, port: str, baud: int) -> None:
        super().__init__()
        self._serial = serial.Serial(port, baud, timeout=0, write_timeout=1.0, exclusive=True)
        self.heard = False

    def read(self, max_bytes: int) -> bytes:
        data: bytes = self._serial.read(max_bytes)
        if data:
            self.heard = True
        return data

    def write(self, buf: bytes) -> int:
        written: int | None = self._serial.write(buf)
        return written or 0

    def flush(self) -> None:
        """libosdp flushes to drop a half-received packet after an error: discard what is waiting."""
        self._serial.reset_input_buffer()

    def close(self) -> None:
        self._serial.close()
