"""Contact cards have no contactless UID: a PIV card is identified by its CHUID instead.

The card UUID (GUID, tag 34) is unique per card; older cards carry only a FASC-N (tag 30).
"""

from __future__ import annotations

from typing import Final

from handoff.readers.apdu import GET_UID, SW_OK, CardRejected, Transmit, uid_from_get_data
from handoff.readers.tlv import parse_tlv

SELECT_PIV: Final = bytes.fromhex("00A4040009A0000003080000100000")
GET_CHUID: Final = bytes.fromhex("00CB3FFF055C035FC10200")
GET_UID_UNSUPPORTED: Final = frozenset({0x6A81, 0x6D00, 0x6E00, 0x6A86, 0x6800, 0x6A82})
"""What a contact card without a contactless UID answers to GET UID."""


def read_uid_or_chuid(transmit: Transmit) -> bytes:
    """The UID; for a contact card that has none, the card UUID (or FASC-N) of its PIV CHUID."""
    data, status_word = transmit(GET_UID)
    if status_word not in GET_UID_UNSUPPORTED:
        return uid_from_get_data(data, status_word)
    _, selected = transmit(SELECT_PIV)
    if selected != SW_OK and selected >> 8 != 0x61:
        raise CardRejected("unreadable", f"card has neither a UID nor a PIV application (status {selected:04X})")
    return chuid_identifier(get_response_chain(transmit, GET_CHUID))


def get_response_chain(transmit: Transmit, command: bytes) -> bytes:
    """Send `command`, then GET RESPONSE while the card says more is waiting (61 xx)."""
    data, status_word = transmit(command)
    collected = data
    for _ in range(64):
        if status_word >> 8 != 0x61:
            break
        data, status_word = transmit(bytes([0x00, 0xC0, 0x00, 0x00, status_word & 0xFF]))
        collected += data
    if status_word != SW_OK:
        raise CardRejected("unreadable", f"card refused to return its data object (status {status_word:04X})")
    return collected


def chuid_identifier(response: bytes) -> bytes:
    """From a CHUID data object (tag 53): the card UUID (tag 34) unless zero, else the FASC-N (tag 30)."""
    outer = dict(parse_tlv(response))
    if 0x53 not in outer:
        raise CardRejected("unreadable", "the CHUID answer holds no data object")
    inner = dict(parse_tlv(outer[0x53]))
    guid, fascn = inner.get(0x34, b""), inner.get(0x30, b"")
    if len(guid) == 16 and any(guid):
        return guid
    if len(fascn) == 25 and any(fascn):
        return fascn
    raise CardRejected("unreadable", "the CHUID has neither a card UUID nor a FASC-N")
