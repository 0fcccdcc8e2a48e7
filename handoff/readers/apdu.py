"""Parsing what a card answers, strictly: a wrong identifier is worse than no identifier.

Everything here is pure and refuses anything short, malformed or absurd with `CardRejected`,
whose `reason` becomes the tap_rejected reason and whose message is plain words for the log
(never card bytes: they could be an identifier).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

GET_UID: Final = bytes.fromhex("FFCA000000")

SW_OK: Final = 0x9000
IDENTIFIER_LENGTHS: Final = frozenset({4, 7, 8, 10})
"""14443-A single/double/triple UIDs, 14443-B PUPI (4) and FeliCa IDm (8)."""

Transmit: TypeAlias = Callable[[bytes], tuple[bytes, int]]
"""Sends a command APDU; returns the response data and the status word."""
Identify: TypeAlias = Callable[[Transmit], bytes]
"""Turns a connected card into its identifier, or raises CardRejected."""


class CardRejected(Exception):
    def __init__(self, reason: str, problem: str) -> None:
        super().__init__(problem)
        self.reason = reason


class CardExpired(CardRejected):
    """A genuine card (trusted issuer, key proven) whose certificate is outside its dates: refused
    as `piv_expired`, but its holder is known, so break-glass can still give them the device."""

    def __init__(self, identifier: bytes, problem: str) -> None:
        super().__init__("piv_expired", problem)
        self.identifier = identifier

    def __repr__(self) -> str:
        return f"CardExpired({self.reason!r})"


def split_response(response: Sequence[int]) -> tuple[bytes, int]:
    """A raw response APDU into data and status word."""
    if len(response) < 2:
        raise CardRejected("unreadable", f"response of {len(response)} bytes has no status word")
    if len(response) > 65538:
        raise CardRejected("unreadable", "response longer than any APDU can be")
    if any(not 0 <= byte <= 255 for byte in response):
        raise CardRejected("unreadable", "response holds values that are not bytes")
    raw = bytes(response)
    return raw[:-2], int.from_bytes(raw[-2:], "big")


def uid_from_get_data(data: bytes, status_word: int) -> bytes:
    """The answer to PC/SC GET DATA (UID), as PC/SC part 3 defines it."""
    if status_word != SW_OK:
        raise CardRejected("unreadable", f"card refused GET UID with status {status_word:04X}")
    if len(data) not in IDENTIFIER_LENGTHS:
        raise CardRejected("unreadable", f"GET UID answered {len(data)} bytes, not a UID length")
    if data in (bytes(len(data)), b"\xff" * len(data)):
        raise CardRejected("unreadable", "GET UID answered a blank identifier")
    return data
