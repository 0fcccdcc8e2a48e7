"""PIV command APDUs as the card and the reader both need them: BER lengths and command chaining."""

from __future__ import annotations

from typing import Final

from handoff.readers.apdu import CardRejected, Transmit
from handoff.readers.chuid import get_response_chain

CHUNK: Final = 255
ALG_RSA_2048: Final = 0x07
ALG_ECC_P256: Final = 0x11
KEY_CARD_AUTH: Final = 0x9E
GET_CAK_CERTIFICATE: Final = bytes.fromhex("00CB3FFF055C035FC10100")


def ber_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length < 0x100:
        return bytes([0x81, length])
    return bytes([0x82]) + length.to_bytes(2, "big")


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + ber_length(len(value)) + value


def send_chained(transmit: Transmit, ins: int, p1: int, p2: int, data: bytes, reason: str) -> bytes:
    """Command chaining (CLA 10) for data longer than one short APDU; response chaining (61 xx) after."""
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    for chunk in chunks[:-1]:
        _, status_word = transmit(bytes([0x10, ins, p1, p2, len(chunk)]) + chunk)
        if status_word != 0x9000:
            raise CardRejected(reason, f"card refused a chained command (status {status_word:04X})")
    last = chunks[-1]
    try:
        return get_response_chain(transmit, bytes([0x00, ins, p1, p2, len(last)]) + last + b"\x00")
    except CardRejected as refused:
        raise CardRejected(reason, str(refused)) from None
