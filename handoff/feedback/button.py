"""The break-glass button on the cart, as its pin map names it; its press goes to the loop's inbox.

The press itself decides nothing: it arms the next tap (`runtime.gestures`), so the badge that
follows is the one that asks for emergency access, and the core judges it like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from handoff.feedback.board import load_board

if TYPE_CHECKING:
    from handoff.feedback.gpio import BreakGlassPin


def open_button(board_name: str, on_press: Callable[[], None]) -> BreakGlassPin | None:
    """The board's break-glass button, or None for `board = "none"` and builds without one."""
    if board_name == "none":
        return None
    board = load_board(board_name)
    if board.button is None:
        return None
    from handoff.feedback.gpio import BreakGlassPin  # noqa: PLC0415 - only a cart with a board loads gpiozero

    return BreakGlassPin(board, board.button, on_press)
