"""The cart's own lights, buzzer and break-glass button on GPIO pins (gpiozero), as a pin map under hw/ names them.

A module apart so that an appliance without a board (`feedback.board = "none"`) never loads
gpiozero: it costs memory on every start and needs a pin factory only a Pi has.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Final

from gpiozero import LED, Button, Buzzer, Device, DigitalOutputDevice, GPIOZeroError, PinFactoryFallback

from handoff.errors import ConfigError
from handoff.feedback.board import BUTTON, Board

BOUNCE_S: Final = 0.05
"""A mechanical push button chatters for a few milliseconds: one press must be one press."""


class BreakGlassPin:
    """The break-glass button: a gpiozero Button whose press goes to `on_press` (the loop's inbox)."""

    def __init__(self, board: Board, pin: int, on_press: Callable[[], None]) -> None:
        try:
            self._button = Button(pin, pull_up=True, bounce_time=BOUNCE_S)
        except GPIOZeroError as exc:
            raise ConfigError(f"pin map {board.source}: pins.{BUTTON} = {pin} cannot be used here ({exc})") from None
        self._button.when_pressed = on_press

    def close(self) -> None:
        self._button.close()


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
