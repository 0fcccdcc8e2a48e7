"""PACS (125 kHz / Wiegand) credentials: the published layouts, their parity, and the directory forms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handoff.directory import parse_identifier
from handoff.readers.pacs import LAYOUTS, BadParity, Credential, decode, encode

GOLDEN = [
    # H10301 facility 1, number 1, derived by hand from the layout: the even parity over bits
    # 2-13 sees one 1 (the facility's last bit), so it is 1; the odd parity over 14-25 sees one
    # 1 (the number's last bit), so it is 0.
    ("10000000100000000000000010", Credential("h10301", 1, 1)),
    # H10301 facility 123 (01111011), number 4567 (0001000111010111): bits 2-13 hold 7 ones
    # (even parity 1), bits 14-25 hold 7 ones (odd parity 0).
    ("10111101100010001110101110", Credential("h10301", 123, 4567)),
    # H10304 at its limits: facility 65535, number 524287: bits 2-19 all ones (18, even parity
    # 0), bits 19-36 all ones (18, odd parity 1).
    ("0111111111111111111111111111111111111", Credential("h10304", 65535, 524287)),
]


@pytest.mark.parametrize(("bits", "credential"), GOLDEN)
def test_golden_vectors_decode_and_encode(bits: str, credential: Credential) -> None:
    assert decode(bits, credential.format) == credential
    assert encode(credential) == bits


CREDENTIALS = st.one_of(
    st.builds(Credential, st.just("h10301"), st.integers(0, 255), st.integers(0, 65535)),
    st.builds(Credential, st.just("h10302"), st.just(0), st.integers(0, 2**35 - 1)),
    st.builds(Credential, st.just("h10304"), st.integers(0, 65535), st.integers(0, 2**19 - 1)),
    st.builds(Credential, st.just("c1k35"), st.integers(0, 4095), st.integers(0, 2**20 - 1)),
)


@given(credential=CREDENTIALS)
def test_round_trip(credential: Credential) -> None:
    assert decode(encode(credential), credential.format) == credential


@given(credential=CREDENTIALS, data=st.data())
def test_every_single_bit_flip_is_refused(credential: Credential, data: st.DataObject) -> None:
    bits = encode(credential)
    flip = data.draw(st.integers(0, len(bits) - 1))
    spoiled = bits[:flip] + ("1" if bits[flip] == "0" else "0") + bits[flip + 1 :]
    with pytest.raises(BadParity):
        decode(spoiled, credential.format)


def test_every_bit_of_every_format_is_under_a_parity() -> None:
    for layout in LAYOUTS.values():
        covered = set().union(*(parity.covers for parity in layout.parities))
        assert covered == set(range(layout.length)), layout.name


def test_lengths_pick_the_default_format_and_odd_lengths_are_refused() -> None:
    assert decode(encode(Credential("h10302", 0, 42))).format == "h10302"
    assert decode(encode(Credential("c1k35", 7, 42))) == Credential("c1k35", 7, 42)
    with pytest.raises(ValueError, match="no known PACS format"):
        decode("1" * 30)
    with pytest.raises(ValueError, match="0 and 1"):
        decode("10201")


def test_the_directory_takes_every_form_of_section_7() -> None:
    assert parse_identifier("H10301:001:00001") == parse_identifier("h10301:1:1")
    assert parse_identifier("h10301:1:1") != parse_identifier("h10304:1:1")
    assert parse_identifier("text:0012345") != parse_identifier("text:12345")
    assert parse_identifier("04:A1:B2:C3") == bytes.fromhex("04A1B2C3")
    for bad, why in [
        ("h10301:256:1", "facility 256"),
        ("h10302:1:5", "facility 1"),
        ("c1k35:1:x", "<format>:<facility>:<number>"),
        ("text:", "printable"),
        ("text:a\x1bb", "printable"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_identifier(bad)
