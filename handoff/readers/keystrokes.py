"""Keyboard-wedge badge reads: key codes in, `text:<characters>` out. Pure.

rf IDEAS and OMNIKEY readers in wedge mode type the badge number as a burst of keystrokes
ended by Enter (or Tab). Key codes are decoded, never characters: the keyboard layout and Caps
Lock must not change a badge number, so letters are always upper case and Shift is ignored.
A reader types fast and evenly; a person does not: a burst whose keys come further apart than
`max_gap_s`, that holds a key down long enough to repeat, that is longer than `max_length`, or
that holds a key no reader types, is not a badge and is dropped (the caller logs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from evdev import ecodes

KEY_UP: Final = 0
KEY_DOWN: Final = 1
KEY_REPEAT: Final = 2

CHARACTERS: Final[dict[int, str]] = {
    **{getattr(ecodes, f"KEY_{digit}"): str(digit) for digit in range(10)},
    **{getattr(ecodes, f"KEY_KP{digit}"): str(digit) for digit in range(10)},
    **{getattr(ecodes, f"KEY_{letter}"): letter for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    ecodes.KEY_MINUS: "-",
    ecodes.KEY_KPMINUS: "-",
}
TERMINATORS: Final = frozenset({ecodes.KEY_ENTER, ecodes.KEY_KPENTER, ecodes.KEY_TAB})
IGNORED: Final = frozenset({ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT, ecodes.KEY_CAPSLOCK, ecodes.KEY_NUMLOCK})
"""Keys that carry no character: Shift and the locks only change case, which is normalised."""


@dataclass(frozen=True)
class Read:
    characters: str

    @property
    def identifier(self) -> str:
        return f"text:{self.characters}"


@dataclass(frozen=True)
class Dropped:
    """A burst that was not a badge; `why` is for the log (never the characters themselves)."""

    why: str


@dataclass
class BurstDecoder:
    max_gap_s: float = 0.1
    max_length: int = 64
    _typed: list[str] = field(default_factory=list)
    _last_at: float | None = None
    _spoiled: str | None = None

    def feed(self, code: int, value: int, at: float) -> Read | Dropped | None:
        """One EV_KEY event (`value` 0 up, 1 down, 2 repeat) at `at` seconds; a verdict ends a burst."""
        if value == KEY_UP or code in IGNORED:
            return None
        if self._last_at is not None and at - self._last_at > self.max_gap_s and self._typed:
            self._spoiled = self._spoiled or f"keys {at - self._last_at:.3f} s apart: typed by a person"
        self._last_at = at
        if value == KEY_REPEAT:
            self._spoiled = self._spoiled or "a key held down: typed by a person"
            return None
        if code in TERMINATORS:
            return self._end()
        character = CHARACTERS.get(code)
        if character is None:
            self._spoiled = self._spoiled or f"key code {code} is not one a badge reader types"
        elif len(self._typed) >= self.max_length:
            self._spoiled = self._spoiled or f"longer than {self.max_length} characters"
        else:
            self._typed.append(character)
        return None

    def _end(self) -> Read | Dropped | None:
        typed, spoiled = "".join(self._typed), self._spoiled
        self._typed, self._spoiled, self._last_at = [], None, None
        if spoiled is not None:
            return Dropped(spoiled)
        return Read(typed) if typed else None
