"""An OSDP reader's own LED and beeper as a set of cue outputs (osdp_LED, osdp_BUZ).

The cue player lights sets of outputs frame by frame; this turns each change into the OSDP
command for it, so a cue plays on the reader with the same timing as on the cart's own pins.
A reader has one LED of several colours where the cart has three LEDs: red wins over amber
over green, so a rejection or a fault is never shown as green. Only changes are sent (the bus
is slow), and everything is sent again when the reader comes back online.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from osdp import Command, CommandLEDColor

OsdpCommand: TypeAlias = dict[str, Any]
Submit: TypeAlias = Callable[[OsdpCommand], bool]

COLOURS: Final = (("red", CommandLEDColor.Red), ("amber", CommandLEDColor.Amber), ("green", CommandLEDColor.Green))
SET_PERMANENT: Final = 1
TONE_OFF: Final = 1
TONE_DEFAULT: Final = 2


def colour_for(lit: frozenset[str]) -> int:
    return int(next((colour for name, colour in COLOURS if name in lit), CommandLEDColor.Black))


def led_command(colour: int) -> OsdpCommand:
    """Steady `colour` on the reader's first LED until the next command."""
    return {
        "command": Command.LED,
        "reader": 0,
        "led_number": 0,
        "control_code": SET_PERMANENT,
        "on_count": 1,
        "off_count": 0,
        "on_color": colour,
        "off_color": colour,
        "temporary": False,
    }


def buzzer_command(on: bool) -> OsdpCommand:
    """A tone that lasts until the next command (count 0), or silence."""
    return {
        "command": Command.Buzzer,
        "reader": 0,
        "control_code": TONE_DEFAULT if on else TONE_OFF,
        "on_count": 1 if on else 0,
        "off_count": 0,
        "rep_count": 0,
    }


class OsdpLights:
    def __init__(self, submit: Submit) -> None:
        self._submit = submit
        """Sends one command to the reader; False when it is not online to take it."""
        self._lock = threading.Lock()
        self._wanted: tuple[int, bool] = (CommandLEDColor.Black, False)
        self._sent: tuple[int | None, bool | None] = (None, None)
        self._closed = False

    def light(self, lit: frozenset[str]) -> None:
        with self._lock:
            self._wanted = (colour_for(lit), "buzzer" in lit)
            self._send()

    def resend(self) -> None:
        """The reader (re)connected: it shows its own idea of the LED until told again."""
        with self._lock:
            self._sent = (None, None)
            self._send()

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _send(self) -> None:
        if self._closed:
            return
        colour, buzzing = self._wanted
        sent_colour, sent_buzzing = self._sent
        if colour != sent_colour:
            sent_colour = colour if self._submit(led_command(colour)) else None
        if buzzing != sent_buzzing:
            sent_buzzing = buzzing if self._submit(buzzer_command(buzzing)) else None
        self._sent = (sent_colour, sent_buzzing)
