"""Drives the outputs: one worker thread owns them; callers only ever enqueue.

`show()` never blocks the core: it drops the cue into a queue and returns. A cue plays whole:
only a newer cue cuts it short, because the newest tap is the one the clinician is watching.
An ambient change that arrives meanwhile (the loop sends one after every commit) waits until
the cue is over. Between cues the ambient state is lit, with a slow amber blink while offline.
The outputs are the cart's pins (`handoff.feedback.gpio`) and any reader that has its own LED and beeper
(an OSDP reader): every frame is shown on all of them at once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import Final, Protocol, TypeAlias

from handoff.errors import ConfigError
from handoff.feedback.board import load_board
from handoff.feedback.cues import AMBIENT, FAULT, OFFLINE_BLINK_S, PATTERNS, UNCONFIRMED, Cue


class Feedback(Protocol):
    def show(self, cue: Cue) -> None: ...
    def set_ambient(self, state: str, online: bool, fault: bool = False, warning: bool = False) -> None: ...
    def close(self) -> None: ...


class Lights(Protocol):
    """A set of outputs named like a pin map's (green, red, amber, buzzer)."""

    def light(self, lit: frozenset[str]) -> None:
        """Exactly the outputs in `lit` on, the others off."""

    def close(self) -> None: ...


class NoFeedback:
    """`board = "none"`: an appliance without lights (a test bench, a headless console)."""

    def show(self, cue: Cue) -> None:
        del cue

    def set_ambient(self, state: str, online: bool, fault: bool = False, warning: bool = False) -> None:
        del state, online, fault, warning

    def close(self) -> None:
        return


class _Ambient:
    def __init__(self, state: str, online: bool, fault: bool, warning: bool) -> None:
        self.state, self.online, self.fault, self.warning = state, online, fault, warning


_CLOSE: Final = object()
_BLINK: Final = object()
_Item: TypeAlias = Cue | _Ambient | object


class CueFeedback:
    def __init__(self, lights: Sequence[Lights]) -> None:
        self._lights = tuple(lights)
        self._inbox: queue.Queue[_Item] = queue.Queue()
        self._ambient = _Ambient("available", True, False, False)
        self._thread = threading.Thread(target=self._run, name="feedback", daemon=True)
        self._thread.start()

    def show(self, cue: Cue) -> None:
        self._inbox.put(cue)

    def set_ambient(self, state: str, online: bool, fault: bool = False, warning: bool = False) -> None:
        self._inbox.put(_Ambient(state, online, fault, warning))

    def close(self) -> None:
        self._inbox.put(_CLOSE)
        self._thread.join(2.0)
        for lights in self._lights:
            lights.close()

    def _run(self) -> None:
        blink_on = False
        item: _Item | None = None
        while True:
            if item is None:
                item = self._wait()
            if item is _CLOSE:
                self._light(frozenset())
                return
            if isinstance(item, Cue):
                item = self._play(item)
                if item is not None:
                    continue
            elif isinstance(item, _Ambient):
                self._ambient = item
            elif item is _BLINK:
                blink_on = not blink_on
            ambient = self._ambient
            lit = AMBIENT.get(ambient.state, frozenset()) | (FAULT if ambient.fault else frozenset())
            lit |= UNCONFIRMED if ambient.warning else frozenset()
            if not self._ambient.online:
                lit = lit | {"amber"} if blink_on else lit - {"amber"}
            self._light(lit)
            item = None

    def _wait(self) -> _Item:
        try:
            return self._inbox.get(timeout=None if self._ambient.online else OFFLINE_BLINK_S / 2)
        except queue.Empty:
            return _BLINK

    def _play(self, cue: Cue) -> _Item | None:
        """Play every frame for its full time; returns a newer cue (or close) that cut it short."""
        for frame in PATTERNS[cue]:
            self._light(frame.on)
            end = time.monotonic() + frame.seconds
            while (left := end - time.monotonic()) > 0:
                try:
                    item = self._inbox.get(timeout=left)
                except queue.Empty:
                    break
                if not isinstance(item, _Ambient):
                    return item
                self._ambient = item
        return None

    def _light(self, lit: frozenset[str]) -> None:
        for lights in self._lights:
            lights.light(lit)


def open_feedback(board_name: str, readers: Sequence[Lights] = ()) -> Feedback:
    """The board's pins (none for "none") and the readers' own outputs; NoFeedback if that is nothing."""
    if board_name == "none":
        return CueFeedback(readers) if readers else NoFeedback()
    board = load_board(board_name)
    from gpiozero import GPIOZeroError  # noqa: PLC0415 - only a cart with a board loads gpiozero

    from handoff.feedback.gpio import GpioLights, gpio_problem, gpio_unusable  # noqa: PLC0415

    problem = gpio_problem()
    if problem is not None:
        raise ConfigError(gpio_unusable(board_name, problem))
    try:
        return CueFeedback([GpioLights(board), *readers])
    except GPIOZeroError as exc:
        raise ConfigError(gpio_unusable(board_name, str(exc))) from None
