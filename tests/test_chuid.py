"""Contact PIV cards without a UID are identified by their CHUID, through pcscd and vpcd too."""

from __future__ import annotations

import queue
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handoff.readers.apdu import CardRejected
from handoff.readers.base import BadgePresented, BadRead, ReaderEvent
from handoff.readers.chuid import GET_CHUID, SELECT_PIV, chuid_identifier, read_uid_or_chuid
from handoff.readers.pcsc import PcscReader
from handoff.readers.tlv import parse_tlv
from handoff.sim.vpcd import VirtualCard
from tests.kit import pcscd
from tests.kit.pcscd import ONE_PCSCD

pytestmark = ONE_PCSCD

GUID = bytes.fromhex("3F2504E04F8941D39A0C0305E82C3301")
FASCN = bytes.fromhex("D4E739DA739CED39CE739D836858210842108421C84210C3EB")


def chuid(guid: bytes = GUID, fascn: bytes = FASCN) -> bytes:
    inner = bytes([0x30, len(fascn)]) + fascn + bytes([0x34, len(guid)]) + guid + b"\x35\x08" + b"20301231"
    return bytes([0x53, 0x81, len(inner)]) + inner


def contact_card(object_data: bytes, chunk: int = 32) -> Callable[[bytes], bytes]:
    """A PIV card with no contactless UID that returns its CHUID in chunks (61 xx chaining)."""
    pending = bytearray()

    def respond(apdu: bytes) -> bytes:
        if apdu.startswith(b"\xff\xca"):
            return b"\x6a\x81"
        if apdu == SELECT_PIV:
            return b"\x90\x00"
        if apdu == GET_CHUID:
            pending[:] = object_data
        elif not apdu.startswith(b"\x00\xc0"):
            return b"\x6d\x00"
        part, pending[:] = bytes(pending[:chunk]), pending[chunk:]
        return part + (bytes([0x61, min(len(pending), 255)]) if pending else b"\x90\x00")

    return respond


def transmit_to(card: Callable[[bytes], bytes]) -> Callable[[bytes], tuple[bytes, int]]:
    def transmit(apdu: bytes) -> tuple[bytes, int]:
        answer = card(apdu)
        return answer[:-2], int.from_bytes(answer[-2:], "big")

    return transmit


def test_card_uuid_is_the_identifier() -> None:
    assert read_uid_or_chuid(transmit_to(contact_card(chuid()))) == GUID


def test_fascn_when_the_uuid_is_zero() -> None:
    assert read_uid_or_chuid(transmit_to(contact_card(chuid(guid=bytes(16))))) == FASCN


def test_no_piv_application_is_refused() -> None:
    def card(apdu: bytes) -> bytes:
        return b"\x6a\x81" if apdu.startswith(b"\xff") else b"\x6a\x82"

    with pytest.raises(CardRejected, match="neither a UID nor a PIV application"):
        read_uid_or_chuid(transmit_to(card))


@pytest.mark.parametrize("cut", [1, 5, 20, 40])
def test_truncated_chuid_is_refused_not_guessed(cut: int) -> None:
    with pytest.raises(CardRejected):
        chuid_identifier(chuid()[:-cut])


@given(st.binary(max_size=80))
def test_tlv_and_chuid_parsers_only_ever_refuse(data: bytes) -> None:
    try:
        parse_tlv(data)
        identifier = chuid_identifier(data)
    except CardRejected:
        return
    assert len(identifier) in (16, 25)


def test_contact_piv_card_through_pcscd_and_vpcd() -> None:
    pcscd.ensure_running()
    events: queue.Queue[ReaderEvent] = queue.Queue()
    reader = PcscReader("Virtual PCD 00 00")
    reader.open(events.put)
    try:
        assert VirtualCard(contact_card(chuid())).insert("127.0.0.1", pcscd.VPCD_PORT, 0.3, 10)
        seen = events.get(timeout=15)
        assert isinstance(seen, BadgePresented) and seen.identifier == GUID
        events.get(timeout=15)
        assert VirtualCard(contact_card(b"\x53\x05\x30")).insert("127.0.0.1", pcscd.VPCD_PORT, 0.3, 10)
        bad = events.get(timeout=15)
        assert isinstance(bad, BadRead) and bad.reason == "unreadable"
    finally:
        reader.close()
