"""An ISO/IEC 14443-A badge on nfcpy's UDP frontend, answering a reader as a Type 2 tag would.

nfcpy's UDP driver carries one frame per datagram as ASCII `"<bitrate+type> <hex>"`. Its
own listening side binds every interface; this card speaks the same frames on a socket bound
to the host it is given, so simulated badges stay on loopback. It answers anticollision and
select (4, 7 or 10 byte UIDs through the cascade levels) and the reader's presence checks
(READ of page 0) only once it has been selected, so a badge that replaces another one in
the field is never taken for the one before.
"""

from __future__ import annotations

import functools
import operator
import select
import socket
import time
from dataclasses import dataclass
from typing import Final

BITRATE: Final = b"106A"
SENS_REQ: Final = (b"\x26", b"\x52")
READ: Final = 0x30
CASCADE_TAG: Final = 0x88
SEL_CMDS: Final = (0x93, 0x95, 0x97)
SENS_RES: Final = {4: bytes.fromhex("0400"), 7: bytes.fromhex("4400"), 10: bytes.fromhex("8400")}


def cascade_levels(uid: bytes) -> list[bytes]:
    """The SDD_RES of each cascade level: 4 UID bytes (or CT + 3) followed by their BCC."""
    if len(uid) not in SENS_RES:
        raise ValueError(f"a 14443-A UID is 4, 7 or 10 bytes, not {len(uid)}")
    if len(uid) == 4:
        chunks = [uid]
    elif len(uid) == 7:
        chunks = [bytes([CASCADE_TAG]) + uid[:3], uid[3:]]
    else:
        chunks = [bytes([CASCADE_TAG]) + uid[:3], bytes([CASCADE_TAG]) + uid[3:6], uid[6:]]
    return [chunk + bytes([functools.reduce(operator.xor, chunk)]) for chunk in chunks]


@dataclass
class TapResult:
    activated_at: float | None
    """time.monotonic() when a reader selected the badge; None if none did."""


class NfcBadge:
    def __init__(self, uid: bytes, host: str, port: int) -> None:
        self._levels = cascade_levels(uid)
        self._sens_res = SENS_RES[len(uid)]
        self._memory = (uid + bytes(12))[:12] + bytes.fromhex("e1100600")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._selected = False
        self._read_at: float | None = None
        self.activated_at: float | None = None

    def present(self, hold_s: float, activation_timeout_s: float) -> TapResult:
        """Stay in the field until `hold_s` after a reader first reads the badge, as a person holds
        a badge until the reader has it; leave after `activation_timeout_s` if no reader does.

        The hold is counted from that first read, not from the selection before it: nfcpy probes
        an NXP badge with two commands this one does not answer, each followed by a new selection,
        and on a loaded machine those can outlast a short hold counted from the first selection,
        taking the badge away before the reader has it."""
        try:
            deadline = time.monotonic() + activation_timeout_s
            while True:
                now = time.monotonic()
                if self._read_at is not None:
                    deadline = self._read_at + hold_s
                if now >= deadline:
                    break
                if select.select([self._sock], [], [], deadline - now)[0]:
                    frame, sender = self._sock.recvfrom(1024)
                    reply = self._answer(frame)
                    if reply is not None:
                        self._sock.sendto(BITRATE + b" " + reply.hex().encode(), sender)
            return TapResult(self.activated_at)
        finally:
            self._sock.close()

    def _answer(self, frame: bytes) -> bytes | None:
        try:
            bitrate, hexdata = frame.split()
            data = bytes.fromhex(hexdata.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return None
        if bitrate != BITRATE or not data:
            return None
        if data in SENS_REQ:
            self._selected = False
            return self._sens_res
        if len(data) == 2 and data[0] in SEL_CMDS and data[1] == 0x20:
            level = SEL_CMDS.index(data[0])
            return self._levels[level] if level < len(self._levels) else None
        if len(data) == 7 and data[0] in SEL_CMDS and data[1] == 0x70:
            return self._select(SEL_CMDS.index(data[0]), data[2:])
        if self._selected and len(data) == 2 and data[0] == READ:
            if self._read_at is None:
                self._read_at = time.monotonic()
            return self._read(data[1])
        return None

    def _select(self, level: int, sdd: bytes) -> bytes | None:
        if level >= len(self._levels) or sdd != self._levels[level]:
            return None
        if level < len(self._levels) - 1:
            return b"\x04"
        self._selected = True
        if self.activated_at is None:
            self.activated_at = time.monotonic()
        return b"\x00"

    def _read(self, page: int) -> bytes:
        """Pages 0-3 hold the UID and a capability container; the rest of memory reads as zeros."""
        return self._memory if page == 0 else bytes(16)
