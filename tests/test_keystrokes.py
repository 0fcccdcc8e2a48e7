"""Keyboard-wedge decoding on recorded event sequences: what a reader types, and what a person does.

The shapes follow real captures of wedge readers (key down, key up, a few ms apart, Enter at the
end); EV_SYN reports are filtered out by the device layer before the decoder sees anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from evdev import ecodes
from hypothesis import given
from hypothesis import strategies as st

from handoff.config import KeyboardReaderConfig
from handoff.readers.keystrokes import CHARACTERS, KEY_DOWN, KEY_REPEAT, KEY_UP, BurstDecoder, Dropped, Read
from handoff.readers.registry import build_readers

CODE_FOR = {character: code for code, character in CHARACTERS.items() if not ecodes.KEY[code].startswith("KEY_KP")}

Event = tuple[int, int, float]


def typed(
    text: str, *, start: float = 0.0, gap: float = 0.004, shift: bool = False, end: int = ecodes.KEY_ENTER
) -> list[Event]:
    events: list[Event] = []
    at = start
    for character in [*text, None]:
        code = end if character is None else CODE_FOR[character.upper()]
        if shift and character is not None:
            events.append((ecodes.KEY_LEFTSHIFT, KEY_DOWN, at))
        events += [(code, KEY_DOWN, at), (code, KEY_UP, at + gap / 2)]
        if shift and character is not None:
            events.append((ecodes.KEY_LEFTSHIFT, KEY_UP, at + gap / 2))
        at += gap
    return events


def decode(events: Iterable[Event]) -> list[Read | Dropped]:
    decoder = BurstDecoder()
    return [verdict for code, value, at in events if (verdict := decoder.feed(code, value, at)) is not None]


def test_a_reader_burst_is_a_badge() -> None:
    assert decode(typed("0012345")) == [Read("0012345")]
    assert Read("0012345").identifier == "text:0012345"


def test_shift_caps_lock_and_tab_do_not_change_the_number() -> None:
    caps = [(ecodes.KEY_CAPSLOCK, KEY_DOWN, 0.0), (ecodes.KEY_CAPSLOCK, KEY_UP, 0.001)]
    assert decode(typed("ab12", shift=True)) == [Read("AB12")]
    assert decode(caps + typed("ab12", start=0.002)) == [Read("AB12")]
    assert decode(typed("ab12", end=ecodes.KEY_TAB)) == [Read("AB12")]


def test_keypad_digits_are_digits() -> None:
    events = [(ecodes.KEY_KP4, KEY_DOWN, 0.0), (ecodes.KEY_KP2, KEY_DOWN, 0.004), (ecodes.KEY_KPENTER, KEY_DOWN, 0.008)]
    assert decode(events) == [Read("42")]


def test_a_person_typing_is_not_a_badge() -> None:
    [slow] = decode(typed("0012345", gap=0.15))
    assert isinstance(slow, Dropped) and "typed by a person" in slow.why
    held = [*typed("12")[:1], (CODE_FOR["1"], KEY_REPEAT, 0.03), *typed("3", start=0.031)]
    [repeat] = decode(held)
    assert isinstance(repeat, Dropped) and "held down" in repeat.why
    [word] = decode([(ecodes.KEY_SPACE, KEY_DOWN, 0.0), *typed("1", start=0.004)])
    assert isinstance(word, Dropped) and "not one a badge reader types" in word.why
    [long] = decode(typed("1" * 65))
    assert isinstance(long, Dropped) and "longer than 64" in long.why


def test_interleaved_keys_and_the_next_burst_after_a_drop() -> None:
    interleaved = [
        (CODE_FOR["1"], KEY_DOWN, 0.0),
        (CODE_FOR["2"], KEY_DOWN, 0.002),
        (CODE_FOR["1"], KEY_UP, 0.003),
        (CODE_FOR["2"], KEY_UP, 0.004),
        (ecodes.KEY_ENTER, KEY_DOWN, 0.006),
    ]
    assert decode(interleaved) == [Read("12")]
    assert decode(typed("99", gap=0.5) + typed("4711", start=5.0)) == [
        Dropped("keys 0.500 s apart: typed by a person"),
        Read("4711"),
    ]


@given(
    text=st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=64),
    shift=st.booleans(),
    gap=st.floats(min_value=0.001, max_value=0.09),
)
def test_any_fast_burst_decodes_to_its_upper_case_characters(text: str, shift: bool, gap: float) -> None:
    assert decode(typed(text, gap=gap, shift=shift)) == [Read(text.upper())]


def test_a_configured_wedge_that_is_not_plugged_in_says_so() -> None:
    """Runs here: this machine has no input device named like a badge reader."""
    readers = build_readers([KeyboardReaderConfig(match="RFIDeas-not-present")])
    readers.open(lambda event: None)
    try:
        deadline = time.monotonic() + 5
        while readers.health()[0].detail == "not opened yet" and time.monotonic() < deadline:
            time.sleep(0.05)
        health = readers.health()[0]
        assert (health.kind, health.ok) == ("keyboard", False) and "plug the reader in" in health.detail
    finally:
        readers.close()
