"""A virtual smartcard for the vsmartcard-vpcd driver of pcscd.

vpcd listens for one card per slot; frames are a 2-byte big-endian length then the bytes. A
1-byte frame is control (0 power off, 1 power on, 2 reset, 4 get ATR: the card answers with
its ATR); anything else is a command APDU, answered by the card's responder. Closing the
connection is pulling the card.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from typing import Final

from handoff.readers.apdu import GET_UID

CTRL_GET_ATR: Final = 4
ATR: Final = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
"""A PC/SC part 3 contactless storage card: what a CCID reader reports for a 14443 badge."""

Responder = Callable[[bytes], bytes]


def uid_responder(uid: bytes) -> Responder:
    def respond(apdu: bytes) -> bytes:
        if apdu == GET_UID:
            return uid + b"\x90\x00"
        return b"\x6d\x00"

    return respond


class VirtualCard:
    def __init__(self, responder: Responder, atr: bytes = ATR) -> None:
        self._responder = responder
        self._atr = atr
        self.first_used_at: float | None = None
        self.used_at: float | None = None
        """When the last command APDU arrived: the card stays `hold_s` after the reader is done with it."""

    def insert(self, host: str, port: int, hold_s: float, use_timeout_s: float) -> bool:
        """Sit in the reader until `hold_s` after its last command, or `use_timeout_s` unused; True if used."""
        with socket.create_connection((host, port), timeout=use_timeout_s) as sock:
            started = time.monotonic()
            buffer = b""
            while True:
                deadline = self.used_at + hold_s if self.used_at is not None else started + use_timeout_s
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
                    return self.used_at is not None
                chunk = sock.recv(65536)
                if not chunk:
                    return self.used_at is not None
                buffer += chunk
                while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
                    size = int.from_bytes(buffer[:2], "big")
                    frame, buffer = buffer[2 : 2 + size], buffer[2 + size :]
                    reply = self._answer(frame)
                    if reply is not None:
                        sock.sendall(len(reply).to_bytes(2, "big") + reply)

    def _answer(self, frame: bytes) -> bytes | None:
        if len(frame) == 1:
            return self._atr if frame[0] == CTRL_GET_ATR else None
        self.used_at = time.monotonic()
        self.first_used_at = self.first_used_at or self.used_at
        return self._responder(frame)
