"""The cart's own lights and buzzer on GPIO pins (gpiozero), as a pin map under hw/ names them.

A module apart so that an appliance without a board (`feedback.board = "none"`) never loads
gpiozero: it costs memory on every start and needs a pin factory only a Pi has.
"""

from __future__ import annotations

from gpiozero import LED, Buzzer, DigitalOutputDevice

from handoff.feedback.board import Board


class GpioLights:
    def __init__(self, board: Board) -> None:
        self._outputs: dict[str, DigitalOutputDevice] = {
            name: (Buzzer if name == "buzzer" else LED)(pin, active_high=board.active_high, initial_value=False)
            for name, pin in board.pins.items()
        }

    def light(self, lit: frozenset[str]) -> None:
        for name, output in self._outputs.items():
            if (name in lit) != bool(output.value):
                output.value = name in lit

    def close(self) -> None:
        for output in self._outputs.values():
            output.close()
