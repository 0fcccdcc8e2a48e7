"""The break-glass button on the cart: a gpiozero Button whose press goes to the loop's inbox.

The press itself decides nothing: it arms the next tap (`runtime.gestures`), so the badge that
follows is the one that asks for emergency access, and the core judges it like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from gpiozero import Button, GPIOZeroError

from handoff.errors import ConfigError
from handoff.feedback.board import BUTTON, Board, load_board

BOUNCE_S: Final = 0.05
"""A mechanical push button chatters for a few milliseconds: one press must be one press."""


class BreakGlassPin:
    def __init__(self, board: Board, pin: int, on_press: Callable[[], None]) -> None:
        try:
            self._button = Button(pin, pull_up=True, bounce_time=BOUNCE_S)
        except GPIOZeroError as exc:
            raise ConfigError(f"pin map {board.source}: pins.{BUTTON} = {pin} cannot be used here ({exc})") from None
        self._button.when_pressed = on_press

    def close(self) -> None:
        self._button.close()


def open_button(board_name: str, on_press: Callable[[], None]) -> BreakGlassPin | None:
    """The board's break-glass button, or None for `board = "none"` and builds without one."""
    if board_name == "none":
        return None
    board = load_board(board_name)
    return None if board.button is None else BreakGlassPin(board, board.button, on_press)
