"""The cart's own lights and buzzer on GPIO pins (gpiozero), as a pin map under hw/ names them.

A module apart so that an appliance without a board (`feedback.board = "none"`) never loads
gpiozero: it costs memory on every start and needs a pin factory only a Pi has.
"""

from __future__ import annotations

import warnings

from gpiozero import LED, Buzzer, Device, DigitalOutputDevice, GPIOZeroError, PinFactoryFallback

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


def gpio_problem() -> str | None:
    """Why gpiozero finds no way to drive pins here (not a Pi, no pin library), or None.

    The first step of building any output, asked alone so `handoff doctor` fails exactly where
    `handoff run` would refuse, without claiming pins a running appliance holds.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PinFactoryFallback)
            Device.ensure_pin_factory()
    except (GPIOZeroError, ImportError, OSError, RuntimeError) as exc:
        return str(exc)
    return None


def gpio_unusable(board_name: str, problem: str) -> str:
    return (
        f'feedback.board = "{board_name}" needs GPIO, which is not usable here ({problem}); '
        'install lgpio on a Pi, or set board = "none"'
    )
