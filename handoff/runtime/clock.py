"""The only place the runtime learns the time, so tests can move it by hand.

A Raspberry Pi has no RTC: it boots on a saved time and NTP then steps the clock, often by
hours or days. Timers measured on the wall clock would fire at once after a forward step (a
holder logged off seconds after checkout) or days late after a backward one (an idle session
left open: a security defect). So within one run, durations come from CLOCK_BOOTTIME, which is
monotonic and keeps counting through suspend; the wall clock only anchors that timeline when
the appliance starts (custody carries across a restart in wall time) and stamps events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

boottime: Callable[[], float] = partial(time.clock_gettime, time.CLOCK_BOOTTIME)


class Clock(Protocol):
    def time(self) -> float:
        """The timeline the core's timers run on: epoch seconds at start, then monotonic."""
        ...

    def wall(self) -> float:
        """Wall-clock epoch seconds, for stamping events and checking commands' issue times."""
        ...


class SystemClock:
    def __init__(self, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = boottime) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._anchor = wall() - monotonic()

    def time(self) -> float:
        return self._anchor + self._monotonic()

    def wall(self) -> float:
        return self._wall()
