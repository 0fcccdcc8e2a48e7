"""Is the system clock disciplined by NTP? Events carry wall-clock times auditors rely on.

Decision: ask the kernel with adjtimex(2) rather than run `timedatectl`: timedated derives
NTPSynchronized from the same call, and this works without systemd or a subprocess. It runs
on every commit, before the "accepted" cue, so libc is the process's own (dlopen(NULL)), found
once: `ctypes.util.find_library` would run `ldconfig -p` each time.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Final

TIME_ERROR: Final = 5
STA_UNSYNC: Final = 0x0040


class _Timex(ctypes.Structure):
    """The head of `struct timex`; the padding covers the rest of the kernel's layout."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("rest", ctypes.c_char * 256),
    ]


def synced_from_timex(state: int, status: int) -> bool:
    return state != TIME_ERROR and not status & STA_UNSYNC


def clock_synced() -> bool:
    """True when the kernel says NTP keeps the clock in sync; False when it cannot tell."""
    timex = _Timex()
    state = int(_libc().adjtimex(ctypes.byref(timex)))
    return state >= 0 and synced_from_timex(state, int(timex.status))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
