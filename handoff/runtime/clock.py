"""The only place the runtime learns the time, so tests can move it by hand."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch: timers must survive a reboot, so they use this."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()
