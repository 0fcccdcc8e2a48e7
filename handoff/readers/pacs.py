"""125 kHz / PACS credentials: raw Wiegand bits to `<format>:<facility>:<number>` (hw/readers.md).

Pure. A reader that hands over raw bits (OSDP, some wedge modes) has them checked here: the
parity bits of the published layouts must hold, or the read is refused as unreadable rather
than turned into somebody else's number. Bits are given in transmission order (the first bit
sent is bit 1 of HID's layout descriptions).

| format | bits | layout (HID) |
|---|---|---|
| h10301 | 26 | P(even, 2-13), facility 8, number 16, P(odd, 14-25) |
| h10302 | 37 | P(even, 2-19), number 35, P(odd, 19-36); facility 0 |
| h10304 | 37 | P(even, 2-19), facility 16, number 19, P(odd, 19-36) |
| c1k35 | 35 | P(odd, all), P(even, 2 of every 3), company id 12, number 20, P(odd, the other 2 of 3) |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


class BadParity(ValueError):
    """The bits do not hold together: a misread, or bits that are not this format."""


@dataclass(frozen=True)
class Credential:
    format: str
    facility: int
    number: int

    @property
    def identifier(self) -> str:
        """The form the badge directory's `uid` column takes."""
        return f"{self.format}:{self.facility}:{self.number}"

    @property
    def badge_bytes(self) -> bytes:
        """What is keyed under the site secret: the text form, tagged so no UID can collide with it."""
        return PACS_TAG + self.identifier.encode()


PACS_TAG: Final = b"pacs\x00"
TEXT_TAG: Final = b"text\x00"
MAX_TEXT: Final = 64


def text_badge_bytes(characters: str) -> bytes:
    """A keyboard-wedge read (`text:<characters>`), tagged like a PACS credential."""
    return TEXT_TAG + characters.encode()


def parse_credential(text: str) -> Credential:
    """`<format>:<facility>:<number>` as the directory CSV writes it; ValueError names what is wrong."""
    name, _, rest = text.partition(":")
    facility_text, _, number_text = rest.partition(":")
    if name not in LAYOUTS or not facility_text.isdigit() or not number_text.isdigit():
        raise ValueError(f"uid {text!r} is not <format>:<facility>:<number> with format one of {', '.join(LAYOUTS)}")
    credential = Credential(name, int(facility_text), int(number_text))
    encode(credential)
    return credential


@dataclass(frozen=True)
class _Parity:
    """The bit at `position` makes the count of ones over `covers` (itself included) even or odd."""

    position: int
    odd: bool
    covers: tuple[int, ...]

    def holds(self, bits: list[int]) -> bool:
        return sum(bits[index] for index in self.covers) % 2 == int(self.odd)


@dataclass(frozen=True)
class _Layout:
    name: str
    length: int
    facility: tuple[int, int]
    """(first bit, how many), 0-based in transmission order; (0, 0) for none."""
    number: tuple[int, int]
    parities: tuple[_Parity, ...]
    """In the order an encoder can set them: each covers only bits set before it."""


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


def _c1k35_covers(value_mask: int) -> tuple[int, ...]:
    """HID Corporate 1000 masks count bits from the last one sent (value bit 0 = position 34)."""
    return tuple(34 - bit for bit in range(35) if value_mask >> bit & 1)


LAYOUTS: Final[dict[str, _Layout]] = {
    layout.name: layout
    for layout in (
        _Layout("h10301", 26, (1, 8), (9, 16), (_Parity(0, False, _span(0, 12)), _Parity(25, True, _span(13, 25)))),
        _Layout("h10302", 37, (0, 0), (1, 35), (_Parity(0, False, _span(0, 18)), _Parity(36, True, _span(18, 36)))),
        _Layout("h10304", 37, (1, 16), (17, 19), (_Parity(0, False, _span(0, 18)), _Parity(36, True, _span(18, 36)))),
        _Layout(
            "c1k35",
            35,
            (2, 12),
            (14, 20),
            (
                _Parity(1, False, _c1k35_covers(0x3_B6DB6DB6)),
                _Parity(34, True, _c1k35_covers(0x3_6DB6DB6D)),
                _Parity(0, True, _span(0, 34)),
            ),
        ),
    )
}
DEFAULT_FOR_LENGTH: Final[dict[int, str]] = {26: "h10301", 35: "c1k35", 37: "h10302"}
"""A 37-bit read is H10302 unless the reader is configured for H10304: the length cannot tell."""


def _field(bits: list[int], span: tuple[int, int]) -> int:
    first, count = span
    value = 0
    for bit in bits[first : first + count]:
        value = value << 1 | bit
    return value


def decode(bits: str, format_name: str | None = None) -> Credential:
    """`bits` as 0s and 1s in transmission order; raises BadParity, or ValueError for the wrong shape."""
    if not bits or set(bits) - {"0", "1"}:
        raise ValueError("bits must be a string of 0 and 1")
    name = format_name or DEFAULT_FOR_LENGTH.get(len(bits))
    layout = LAYOUTS.get(name or "")
    if layout is None:
        raise ValueError(f"no known PACS format for {len(bits)} bits ({format_name or 'none named'})")
    if len(bits) != layout.length:
        raise ValueError(f"{layout.name} has {layout.length} bits, got {len(bits)}")
    values = [int(bit) for bit in bits]
    if not all(parity.holds(values) for parity in layout.parities):
        raise BadParity(f"{layout.name} parity does not hold")
    facility = _field(values, layout.facility) if layout.facility[1] else 0
    return Credential(layout.name, facility, _field(values, layout.number))


def encode(credential: Credential) -> str:
    """The bits a reader would send for `credential` (for simulated badges and round trips)."""
    layout = LAYOUTS[credential.format]
    bits = [0] * layout.length
    for (first, count), value in ((layout.facility, credential.facility), (layout.number, credential.number)):
        if not 0 <= value < 1 << count:
            what = "facility" if (first, count) == layout.facility else "number"
            raise ValueError(f"{credential.format} has no {what} {value}: it holds {count} bits")
        for index in range(count):
            bits[first + index] = value >> (count - 1 - index) & 1
    for parity in layout.parities:
        if not parity.holds(bits):
            bits[parity.position] ^= 1
    return "".join(map(str, bits))
