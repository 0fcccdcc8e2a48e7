"""Strict BER-TLV, as PIV data objects use it: anything short or over-long is refused, never guessed."""

from __future__ import annotations

from handoff.readers.apdu import CardRejected


def parse_tlv(data: bytes, reason: str = "unreadable") -> list[tuple[int, bytes]]:
    """Top-level (tag, value) pairs; multi-byte tags and long-form lengths (up to 3 bytes) supported."""
    items: list[tuple[int, bytes]] = []
    index = 0
    while index < len(data):
        tag = data[index]
        index += 1
        if tag & 0x1F == 0x1F:
            while True:
                if index >= len(data):
                    raise CardRejected(reason, "a data object tag runs past the end")
                tag = (tag << 8) | data[index]
                index += 1
                if not data[index - 1] & 0x80:
                    break
        if index >= len(data):
            raise CardRejected(reason, "a data object has no length")
        length = data[index]
        index += 1
        if length & 0x80:
            count = length & 0x7F
            if not 1 <= count <= 3 or index + count > len(data):
                raise CardRejected(reason, "a data object length is malformed")
            length = int.from_bytes(data[index : index + count], "big")
            index += count
        if index + length > len(data):
            raise CardRejected(reason, "a data object is longer than the response")
        items.append((tag, data[index : index + length]))
        index += length
    return items
